package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"kok.dev/contract/hostapi"
)

func TestParseOSRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]string
	}{
		{"quoted", "NAME=\"Debian GNU/Linux\"\nID=debian\n", map[string]string{"NAME": "Debian GNU/Linux", "ID": "debian"}},
		{"comments and blanks", "# c\n\nID='rocky'\nVERSION_ID=\"9.4\"\n", map[string]string{"ID": "rocky", "VERSION_ID": "9.4"}},
		{"escaped quote", `PRETTY_NAME="a \"b\""`, map[string]string{"PRETTY_NAME": `a "b"`}},
		{"garbage lines skipped", "noequals\nID=x\n", map[string]string{"ID": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ParseOSRelease([]byte(tc.in)))
		})
	}
}

func TestFactsReadsSimulatedRoot(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=kokos\nPRETTY_NAME=\"kok simulated OS 1\"\n"), 0o644))

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Host: "w1", Root: root, Simulate: true}
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.Facts)
	require.NoError(t, err)
	var got hostapi.FactsResult
	require.NoError(t, val.Get(&got))
	require.Equal(t, "w1", got.Host)
	require.Equal(t, "kokos", got.OSID)
	require.Equal(t, "kok simulated OS 1", got.OS)
	require.NotEmpty(t, got.Kernel)
	require.True(t, got.Simulated)
}
