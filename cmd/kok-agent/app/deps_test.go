package app

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAgentStaysLean guards DESIGN.md §2 and §8: kok-agent runs on 10,000 hosts, so it must not
// link the Temporal server (size, memory) nor client-go (agents never talk to the Kubernetes API).
func TestAgentStaysLean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the whole import graph")
	}
	out, err := exec.Command("go", "list", "-deps", "kok.dev/cmd/kok-agent").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.temporal.io/server", "k8s.io/client-go", "sigs.k8s.io/controller-runtime"} {
			require.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"),
				"kok-agent imports %s (through some package): it must stay lean", dep)
		}
	}
}
