package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
)

// wantCRD is what each generated CRD must declare for kubectl users.
type wantCRD struct {
	kind      string
	shortName string
	columns   []string // printer columns in order, priority 0 only
}

var wantCRDs = map[string]wantCRD{
	"clusterpackageversions": {"ClusterPackageVersion", "cpv", []string{"Kubernetes", "Phase", "Age"}},
	"clusters":               {"Cluster", "kc", []string{"Phase", "Version", "Masters", "Ready", "Endpoint", "Age"}},
	"machinepackageversions": {"MachinePackageVersion", "mpv", []string{"Package", "Version", "Type", "Installer", "Age"}},
	"machines":               {"Machine", "mach", []string{"Phase", "Versions", "Schedulable", "Age"}},
	"noderollouts":           {"NodeRollout", "nro", []string{"Phase", "Total", "Updated", "Failed", "Batch", "Age"}},
	"nodefaults":             {"NodeFault", "nf", []string{"Node", "Type", "Severity", "Phase", "Attempts", "Age"}},
	"ratelimitpolicies":      {"RateLimitPolicy", "rlp", []string{"Operation", "Max-In-Flight", "In-Flight", "Used-In-Window", "Phase", "Age"}},
}

// TestGeneratedCRDs checks crds/ as the API server would on install (structural schema, CEL
// rules compile and fit the cost budget) and that each kind shows what its users expect.
func TestGeneratedCRDs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "crds", "*.yaml"))
	require.NoError(t, err)
	require.Len(t, files, len(wantCRDs), "crds/ must hold one file per kind; run make generate")

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			var crd apiextensionsv1.CustomResourceDefinition
			require.NoError(t, yaml.UnmarshalStrict(raw, &crd))

			want, ok := wantCRDs[crd.Spec.Names.Plural]
			require.True(t, ok, "unexpected CRD %s", crd.Name)
			require.Equal(t, kokv1.GroupName, crd.Spec.Group)
			require.Equal(t, want.kind, crd.Spec.Names.Kind)
			require.Equal(t, apiextensionsv1.ClusterScoped, crd.Spec.Scope)
			require.Equal(t, []string{want.shortName}, crd.Spec.Names.ShortNames)
			require.Equal(t, []string{"kok"}, crd.Spec.Names.Categories)

			require.Len(t, crd.Spec.Versions, 1)
			v := crd.Spec.Versions[0]
			require.Equal(t, kokv1.SchemeGroupVersion.Version, v.Name)
			require.True(t, v.Served)
			require.True(t, v.Storage)
			require.NotNil(t, v.Subresources, "status subresource")
			require.NotNil(t, v.Subresources.Status, "status subresource")
			var columns []string
			for _, c := range v.AdditionalPrinterColumns {
				if c.Priority == 0 {
					columns = append(columns, c.Name)
				}
			}
			require.Equal(t, want.columns, columns)

			status := v.Schema.OpenAPIV3Schema.Properties["status"].Properties
			for _, field := range []string{"phase", "conditions", "observedGeneration"} {
				require.Contains(t, status, field, "status.%s", field)
			}
			conditions := status["conditions"]
			require.Equal(t, "map", *conditions.XListType)
			require.Equal(t, []string{"type"}, conditions.XListMapKeys)

			// The API server records the stored version on create; the files leave it empty.
			crd.Status.StoredVersions = []string{v.Name}
			var internal apiextensions.CustomResourceDefinition
			require.NoError(t, apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&crd, &internal, nil))
			errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal)
			require.Empty(t, errs.ToAggregate(), "the API server would refuse this CRD")
		})
	}
}
