package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, Write(path, "written by a test", []Doc{
		{APIVersion: "kok.dev/v1alpha1", Kind: "MachinePackageVersion", Name: "a-1", Spec: map[string]string{"package": "a", "version": "1"}},
		{APIVersion: "kok.dev/v1alpha1", Kind: "MachinePackageVersion", Name: "b-2", Spec: map[string]string{"package": "b"}},
	}))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, `# written by a test
---
apiVersion: kok.dev/v1alpha1
kind: MachinePackageVersion
metadata:
  name: a-1
spec:
  package: a
  version: "1"
---
apiVersion: kok.dev/v1alpha1
kind: MachinePackageVersion
metadata:
  name: b-2
spec:
  package: b
`, string(got))
}
