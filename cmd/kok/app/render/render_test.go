package render

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTemporalNamespaceFromWebUILink(t *testing.T) {
	for link, want := range map[string]string{
		"": "kok",
		"http://127.0.0.1:8233/namespaces/prod%2Deu/workflows/machine%2Fa%2Fb":     "prod-eu",
		"https://ui.example/temporal/namespaces/ns1/workflows/machine%2Fa%2Fb/run": "ns1",
		"http://ui.example/other/path":                                             "kok",
		"::bad":                                                                    "kok",
	} {
		require.Equal(t, want, TemporalNamespace(link), link)
	}
}

func TestGeneration(t *testing.T) {
	require.Equal(t, "3 (no status reported yet)", Generation(3, 0))
	require.Equal(t, "3 (status is up to date)", Generation(3, 3))
	require.Equal(t, "3 (status describes generation 2: kok has not caught up with the latest spec yet)", Generation(3, 2))
}
