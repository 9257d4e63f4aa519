package machine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
	runtime := Package{Name: "containerd", Version: "1.7.2"}
	kubelet := Package{Name: "kubelet", Version: "v1.37.2", DependsOn: []string{"containerd"}}
	logs := Package{Name: "log-collector", Version: "2.0", DependsOn: []string{"kubelet"}}

	for _, tc := range []struct {
		name      string
		desired   []Package
		installed []Installed
		want      []string
		wantErr   string
	}{
		{
			name:    "fresh host installs in dependency order",
			desired: []Package{logs, kubelet, runtime},
			want:    []string{"install containerd 1.7.2", "install kubelet v1.37.2", "install log-collector 2.0"},
		},
		{
			name:      "converged host has nothing to do",
			desired:   []Package{runtime, kubelet},
			installed: []Installed{{Name: "containerd", Version: "1.7.2"}, {Name: "kubelet", Version: "v1.37.2", DependsOn: []string{"containerd"}}},
			want:      nil,
		},
		{
			name:      "one upgrade",
			desired:   []Package{runtime, {Name: "kubelet", Version: "v1.37.3", DependsOn: []string{"containerd"}}},
			installed: []Installed{{Name: "containerd", Version: "1.7.2"}, {Name: "kubelet", Version: "v1.37.2"}},
			want:      []string{"upgrade kubelet v1.37.2 -> v1.37.3"},
		},
		{
			name:      "downgrade is a version change too",
			desired:   []Package{{Name: "containerd", Version: "1.6.0"}},
			installed: []Installed{{Name: "containerd", Version: "1.7.2"}},
			want:      []string{"upgrade containerd 1.7.2 -> 1.6.0"},
		},
		{
			name:    "removals first, dependents before dependencies",
			desired: []Package{{Name: "node-problem-detector", Version: "1"}},
			installed: []Installed{
				{Name: "containerd", Version: "1.7.2"},
				{Name: "kubelet", Version: "v1.37.2", DependsOn: []string{"containerd"}},
				{Name: "log-collector", Version: "2.0", DependsOn: []string{"kubelet"}},
			},
			want: []string{"remove log-collector 2.0", "remove kubelet v1.37.2", "remove containerd 1.7.2", "install node-problem-detector 1"},
		},
		{
			name:      "removing a package others keep using is not reordered by the kept one",
			desired:   []Package{{Name: "kubelet", Version: "v1.37.2"}},
			installed: []Installed{{Name: "kubelet", Version: "v1.37.2", DependsOn: []string{"old-runtime"}}, {Name: "old-runtime", Version: "1"}},
			want:      []string{"remove old-runtime 1"},
		},
		{
			name:    "independent packages go alphabetically",
			desired: []Package{{Name: "b", Version: "1"}, {Name: "a", Version: "1"}, {Name: "c", Version: "1"}},
			want:    []string{"install a 1", "install b 1", "install c 1"},
		},
		{
			name:    "missing dependency",
			desired: []Package{kubelet},
			wantErr: "package kubelet depends on containerd, which the machine does not list",
		},
		{
			name:    "duplicate",
			desired: []Package{runtime, runtime},
			wantErr: "package containerd is listed twice",
		},
		{
			name:    "cycle",
			desired: []Package{{Name: "a", Version: "1", DependsOn: []string{"b"}}, {Name: "b", Version: "1", DependsOn: []string{"a"}}, runtime},
			wantErr: "dependency cycle among packages a, b",
		},
		{
			name:    "self dependency",
			desired: []Package{{Name: "a", Version: "1", DependsOn: []string{"a"}}},
			wantErr: "package a depends on itself",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := Plan(tc.desired, tc.installed)
			if tc.wantErr != "" {
				var pe *PlanError
				require.ErrorAs(t, err, &pe)
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, s := range steps {
				got = append(got, s.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
