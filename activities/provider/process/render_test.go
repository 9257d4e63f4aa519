package process

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"kok.dev/contract/hostapi"
)

func release() map[string]Release {
	r := map[string]Release{}
	for _, c := range []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler} {
		r[c] = Release{Version: "v1.37.2", ArtifactURL: "file:///pkgs/" + c + ".tar.gz", SHA256: strings.Repeat("a", 64), Args: map[string]string{"v": "2"}}
	}
	return r
}

func input(masters ...Master) Input {
	return Input{
		Cluster: "c1", Masters: masters, This: masters[0], Ports: StandardPorts,
		ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16", Release: release(),
		Files: Files{EtcdServerKey: "KEY", CA: "CA"},
	}
}

func flagOf(p hostapi.PackageSpec, name string) string {
	for _, a := range p.Service.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return "<unset>"
}

func TestRenderOneMaster(t *testing.T) {
	in := input(Master{Host: "m1", IP: "10.0.0.1"})
	in.Overrides = map[string]map[string]string{KubeAPIServer: {"v": "4", "audit-log-maxage": "7"}}
	pkgs, err := Render(in)
	require.NoError(t, err)
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{"kc-c1-etcd", "kc-c1-kube-apiserver", "kc-c1-kube-controller-manager", "kc-c1-kube-scheduler"}, names)
	etcd, api, kcm, sched := pkgs[0], pkgs[1], pkgs[2], pkgs[3]

	require.Empty(t, etcd.DependsOn)
	require.Equal(t, []string{"kc-c1-etcd"}, api.DependsOn)
	require.Equal(t, []string{"kc-c1-kube-apiserver"}, kcm.DependsOn)
	require.Equal(t, []string{"kc-c1-kube-apiserver"}, sched.DependsOn)

	require.Equal(t, "m1=https://10.0.0.1:2380", flagOf(etcd, "initial-cluster"))
	require.Equal(t, "https://10.0.0.1:2379", flagOf(etcd, "listen-client-urls"), "bound to the master's address only, so masters share ports")
	require.Equal(t, "http://10.0.0.1:2381", flagOf(etcd, "listen-metrics-urls"))
	require.Equal(t, "10.0.0.1", flagOf(kcm, "bind-address"))
	require.Equal(t, "http://10.0.0.1:2381/health", etcd.HealthCheck.HTTPURL)
	require.Equal(t, "${KOK_ROOT}/var/lib/kok/clusters/c1/etcd", flagOf(etcd, "data-dir"))
	require.Equal(t, "https://10.0.0.1:2379", flagOf(api, "etcd-servers"))
	require.Equal(t, "${KOK_ROOT}/etc/kok/clusters/c1/pki/apiserver.crt", flagOf(api, "tls-cert-file"))
	require.Equal(t, "4", flagOf(api, "v"), "the Cluster's override beats the release default")
	require.Equal(t, "7", flagOf(api, "audit-log-maxage"))
	require.Equal(t, "2", flagOf(kcm, "v"), "release defaults apply")
	require.Equal(t, "false", flagOf(kcm, "leader-elect"), "one master needs no election")
	require.Equal(t, "https://10.0.0.1:6443/livez", api.HealthCheck.HTTPURL)
	require.Equal(t, []string{"bin/kube-apiserver"}, api.Service.Command)
	require.Equal(t, "<unset>", flagOf(api, "endpoint-reconciler-type"), "real masters keep the lease reconciler")

	local := input(Master{Host: "m1", IP: "127.0.0.1"})
	lp, err := Render(local)
	require.NoError(t, err)
	require.Equal(t, "none", flagOf(lp[1], "endpoint-reconciler-type"), "the reconciler refuses a loopback master")

	again, err := Render(in)
	require.NoError(t, err)
	require.Equal(t, pkgs, again, "the same input is the same command lines (the agent compares specs to find drift)")
	for _, p := range pkgs {
		for _, f := range p.ConfigFiles {
			require.True(t, strings.HasPrefix(f.Path, "/etc/kok/clusters/c1/pki/"), f.Path)
			if strings.HasSuffix(f.Path, ".key") || strings.HasSuffix(f.Path, ".kubeconfig") {
				require.Equal(t, uint32(0o600), f.Mode, "%s holds a secret", f.Path)
			}
		}
	}
}

func TestRenderThreeMasters(t *testing.T) {
	ms := []Master{{Host: "m2", IP: "10.0.0.2"}, {Host: "m1", IP: "10.0.0.1"}, {Host: "m3", IP: "10.0.0.3"}}
	in := input(ms...)
	in.This = ms[2]
	pkgs, err := Render(in)
	require.NoError(t, err)
	require.Equal(t, "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380", flagOf(pkgs[0], "initial-cluster"))
	require.Equal(t, "m3", flagOf(pkgs[0], "name"))
	require.Equal(t, "https://10.0.0.3:2379", flagOf(pkgs[1], "etcd-servers"), "each apiserver uses its own master's etcd member")
	require.Equal(t, "10.0.0.3", flagOf(pkgs[1], "advertise-address"))
	require.Equal(t, "true", flagOf(pkgs[2], "leader-elect"))
}

func TestRenderRefusesBadInput(t *testing.T) {
	m := Master{Host: "m1", IP: "10.0.0.1"}
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		want   string
	}{
		{"protected override", func(in *Input) { in.Overrides = map[string]map[string]string{KubeAPIServer: {"etcd-servers": "x"}} },
			"spec.components[kube-apiserver].args: --etcd-servers is set by kok (it wires the control plane together) and cannot be overridden"},
		{"missing component", func(in *Input) { delete(in.Release, KubeScheduler) }, "the release has no complete kube-scheduler (version, artifact and sha256 are required)"},
		{"not a master", func(in *Input) { in.This = Master{Host: "w1", IP: "10.0.0.9"} }, "master w1 is not one of the cluster's masters"},
		{"bad IP", func(in *Input) { in.Masters = []Master{{Host: "m1", IP: "m1.local"}}; in.This = in.Masters[0] }, `master m1: "m1.local" is not an IP address`},
		{"bad service CIDR", func(in *Input) { in.ServiceCIDR = "10.96.0.0" }, `service CIDR "10.96.0.0": invalid CIDR address: 10.96.0.0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(m)
			tc.mutate(&in)
			_, err := Render(in)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestPortsFor(t *testing.T) {
	for _, tc := range []struct {
		port    int
		want    Ports
		wantErr string
	}{
		{port: 6443, want: StandardPorts},
		{port: 0, want: StandardPorts},
		{port: 16443, want: Ports{APIServer: 16443, EtcdClient: 16444, EtcdPeer: 16445, EtcdMetrics: 16446, ControllerManager: 16447, Scheduler: 16448, MachineOperator: 16449}},
		{port: 65530, wantErr: "at most 65529"},
	} {
		got, err := PortsFor(tc.port)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

func TestRenderMachineOperator(t *testing.T) {
	in := input(Master{Host: "m1", IP: "10.0.0.1"}, Master{Host: "m2", IP: "10.0.0.2"}, Master{Host: "m3", IP: "10.0.0.3"})
	in.Release[MachineOperator] = Release{Version: "0.1.0", ArtifactURL: "file:///pkgs/mo.tar.gz", SHA256: strings.Repeat("b", 64), Args: map[string]string{"health-probe-bind-address": ":8081"}}
	without, err := Render(in)
	require.NoError(t, err)
	require.Len(t, without, 4, "no operator config: no machine operator")

	in.Operator = &Operator{TemporalAddress: "temporal:7233", TemporalNamespace: "kok", CodecKeys: "KEYS"}
	in.Files.OperatorKubeconfig = "KUBECONFIG"
	pkgs, err := Render(in)
	require.NoError(t, err)
	require.Len(t, pkgs, 5)
	mo := pkgs[4]
	require.Equal(t, "kc-c1-machine-operator", mo.Name)
	require.Equal(t, []string{"bin/kok-manager"}, mo.Service.Command)
	require.Equal(t, []string{"kc-c1-kube-apiserver"}, mo.DependsOn)
	require.Equal(t, "c1", flagOf(mo, "cluster-name"))
	require.Equal(t, "10.0.0.1:10260", flagOf(mo, "health-probe-bind-address"), "the wiring beats the release's default port")
	require.Equal(t, "true", flagOf(mo, "leader-elect"), "three masters run three operators, one leads")
	require.Equal(t, "false", flagOf(mo, "serve-clusters"))
	require.Equal(t, "${KOK_ROOT}/etc/kok/clusters/c1/pki/codec-keys", flagOf(mo, "codec-key-file"))
	require.Len(t, mo.ConfigFiles, 2)

	in.Overrides = map[string]map[string]string{MachineOperator: {"temporal-address": "elsewhere:7233"}}
	_, err = Render(in)
	require.ErrorContains(t, err, "--temporal-address is set by kok")
}
