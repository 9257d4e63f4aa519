package v1alpha1_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

func TestMachineHostName(t *testing.T) {
	m := &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "node-7"}}
	require.Equal(t, "node-7", m.HostName(), "empty spec.host means the Machine's name")
	m.Spec.Host = "rack3-host7"
	require.Equal(t, "rack3-host7", m.HostName())
}
