package machine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecideSchedulable(t *testing.T) {
	logs := Gate{Type: "LogCollectorReady", Mode: GateContinuous, Status: "True"}
	net := Gate{Type: "NetworkReady", Mode: GateContinuous, Status: "True"}
	for _, tc := range []struct {
		name string
		in   SchedulingInput
		want SchedulingDecision
	}{
		{
			name: "all gates true and healthy",
			in:   SchedulingInput{Gates: []Gate{logs, net}, ComponentsHealthy: true},
			want: SchedulingDecision{Schedulable: true},
		},
		{
			name: "no gates at all, healthy",
			in:   SchedulingInput{ComponentsHealthy: true},
			want: SchedulingDecision{Schedulable: true},
		},
		{
			name: "missing condition counts as not ready and names its source",
			in:   SchedulingInput{Gates: []Gate{logs, {Type: "NetworkReady", Mode: GateContinuous, Source: "no ConfigMap in kok-system labelled kok.dev/node=n1 reports NetworkReady"}}, ComponentsHealthy: true},
			want: SchedulingDecision{Reasons: []string{"readiness gate NetworkReady: no condition reported (no ConfigMap in kok-system labelled kok.dev/node=n1 reports NetworkReady)"}},
		},
		{
			name: "false gate with message",
			in:   SchedulingInput{Gates: []Gate{{Type: "NetworkReady", Mode: GateContinuous, Status: "False", Message: "cni not configured"}}, ComponentsHealthy: true},
			want: SchedulingDecision{Reasons: []string{"readiness gate NetworkReady is False: cni not configured"}},
		},
		{
			name: "bootstrap gate holds before first schedulable",
			in:   SchedulingInput{Gates: []Gate{{Type: "ImagesPrefetched", Mode: GateBootstrap, Status: "False"}}, ComponentsHealthy: true},
			want: SchedulingDecision{Reasons: []string{"readiness gate ImagesPrefetched is False"}},
		},
		{
			name: "bootstrap gate ignored once bootstrapped",
			in:   SchedulingInput{Gates: []Gate{{Type: "ImagesPrefetched", Mode: GateBootstrap, Status: "False"}}, Bootstrapped: true, ComponentsHealthy: true},
			want: SchedulingDecision{Schedulable: true},
		},
		{
			name: "continuous gate still holds after bootstrap",
			in:   SchedulingInput{Gates: []Gate{{Type: "NetworkReady", Mode: GateContinuous, Status: "Unknown"}}, Bootstrapped: true, ComponentsHealthy: true},
			want: SchedulingDecision{Reasons: []string{"readiness gate NetworkReady is Unknown"}},
		},
		{
			name: "isolation, unhealthy and deleting all reported, in a stable order",
			in:   SchedulingInput{Gates: []Gate{logs}, Isolations: []string{"noderepair", "alice"}, Deleting: true},
			want: SchedulingDecision{Reasons: []string{"machine is being deleted", "isolation requested by alice, noderepair", "components are not all installed and healthy"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, DecideSchedulable(tc.in))
		})
	}
}
