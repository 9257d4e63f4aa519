package tclient_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"kok.dev/internal/tclient"
)

func TestWebUIURL(t *testing.T) {
	for name, tc := range map[string]struct {
		base, namespace, id, run, want string
	}{
		"run history": {
			"http://127.0.0.1:8233", "kok", "machine/c1/node-1", "8f14e45f-ceea-467a-9575-0b9ee7b2b4b1",
			"http://127.0.0.1:8233/namespaces/kok/workflows/machine%2Fc1%2Fnode-1/8f14e45f-ceea-467a-9575-0b9ee7b2b4b1/history",
		},
		"latest run": {"http://127.0.0.1:8233/", "kok", "cluster/meta/prod", "", "http://127.0.0.1:8233/namespaces/kok/workflows/cluster%2Fmeta%2Fprod"},
		"odd characters": {
			"https://temporal.example/ui", "team a", "noderollout/c1/r 1?x#y%", "r",
			"https://temporal.example/ui/namespaces/team%20a/workflows/noderollout%2Fc1%2Fr%201%3Fx%23y%25/r/history",
		},
		"no web ui": {"", "kok", "machine/c1/n1", "r", ""},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tclient.WebUIURL(tc.base, tc.namespace, tc.id, tc.run))
		})
	}
}
