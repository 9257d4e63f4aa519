package kube

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func cm(name, reporter string, data map[string]string) corev1.ConfigMap {
	return corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ConditionNamespace, Name: name, Labels: map[string]string{LabelNode: "n1", LabelReporter: reporter}},
		Data:       data,
	}
}

func TestParseConditionMaps(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []corev1.ConfigMap
		want     []ReportedCondition
		problems []string
	}{
		{
			name: "keys with reason and message",
			in:   []corev1.ConfigMap{cm("n1-net", "net", map[string]string{"NetworkReady": "True", "NetworkReady.message": "calico up", "NetworkReady.reason": "Running"})},
			want: []ReportedCondition{{Type: "NetworkReady", Status: "True", Reason: "Running", Message: "calico up", Reporter: "net", Source: "kok-system/n1-net"}},
		},
		{
			name: "prefixed types through the JSON list",
			in:   []corev1.ConfigMap{cm("n1-logs", "logs", map[string]string{"conditions": `[{"type":"example.com/LogsReady","status":"False","message":"fluent-bit crashloop"}]`})},
			want: []ReportedCondition{{Type: "example.com/LogsReady", Status: "False", Message: "fluent-bit crashloop", Reporter: "logs", Source: "kok-system/n1-logs"}},
		},
		{
			name: "the worst status wins when two reporters report one type",
			in: []corev1.ConfigMap{
				cm("a", "a", map[string]string{"DiskReady": "True"}),
				cm("b", "b", map[string]string{"DiskReady": "False", "DiskReady.message": "sdb read-only"}),
				cm("c", "c", map[string]string{"DiskReady": "Unknown"}),
			},
			want: []ReportedCondition{{Type: "DiskReady", Status: "False", Message: "sdb read-only", Reporter: "b", Source: "kok-system/b"}},
		},
		{
			name:     "bad status and bad JSON are problems, not conditions",
			in:       []corev1.ConfigMap{cm("x", "x", map[string]string{"NetworkReady": "yes", "conditions": "{"})},
			problems: []string{`kok-system/x: condition NetworkReady has status "yes", want True, False or Unknown`, `kok-system/x: key "conditions" is not a JSON list of conditions: unexpected end of JSON input`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := ParseConditionMaps(tc.in)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.problems, problems)
		})
	}
}
