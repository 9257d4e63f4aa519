package crds

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllHoldsEveryKind(t *testing.T) {
	all, err := All()
	require.NoError(t, err)
	var kinds []string
	for _, c := range all {
		kinds = append(kinds, c.Spec.Names.Kind)
	}
	require.ElementsMatch(t, []string{"Cluster", "ClusterPackageVersion", "Machine", "MachinePackageVersion", "NodeFault", "NodeRollout", "RateLimitPolicy"}, kinds)
}
