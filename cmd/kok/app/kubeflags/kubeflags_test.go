package kubeflags

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	kokv1 "kok.dev/api/v1alpha1"
)

// writeKubeconfig writes a kubeconfig with one context per name, all pointing at server.
func writeKubeconfig(t *testing.T, dir, file, server, current string, contexts ...string) string {
	t.Helper()
	s := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server + "\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n"
	for _, c := range contexts {
		s += "- name: " + c + "\n  context:\n    cluster: c\n    user: u\n"
	}
	if current != "" {
		s += "current-context: " + current + "\n"
	}
	path := filepath.Join(dir, file)
	require.NoError(t, os.WriteFile(path, []byte(s), 0o600))
	return path
}

func TestConnectChoosesTheKubeconfigLikeKubectl(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".kube"), 0o755))
	t.Setenv("HOME", home)
	t.Setenv(EnvKubeconfig, "")

	_, err := (&Flags{}).Connect()
	require.EqualError(t, err, "no kubeconfig found: tried "+filepath.Join(home, ".kube", "config")+
		" ($KUBECONFIG is not set); pass --kubeconfig FILE or set $KUBECONFIG (the local system's is .kok/dev/meta.kubeconfig)")

	writeKubeconfig(t, filepath.Join(home, ".kube"), "config", "https://home.example:6443", "a", "a")
	c, err := (&Flags{}).Connect()
	require.NoError(t, err)
	require.Equal(t, "https://home.example:6443", c.Server)
	require.Equal(t, "a", c.Context)
	require.Equal(t, filepath.Join(home, ".kube", "config"), c.Kubeconfig)

	// $KUBECONFIG wins over the home file; files that do not exist in it are skipped.
	env := writeKubeconfig(t, dir, "env.yaml", "https://env.example:6443", "b", "b")
	t.Setenv(EnvKubeconfig, filepath.Join(dir, "missing.yaml")+string(os.PathListSeparator)+env)
	c, err = (&Flags{}).Connect()
	require.NoError(t, err)
	require.Equal(t, "https://env.example:6443", c.Server)
	require.Equal(t, env, c.Kubeconfig)

	t.Setenv(EnvKubeconfig, filepath.Join(dir, "missing.yaml"))
	_, err = (&Flags{}).Connect()
	require.EqualError(t, err, "no kubeconfig found: none of the files in $KUBECONFIG exists ("+filepath.Join(dir, "missing.yaml")+
		"); pass --kubeconfig FILE or fix $KUBECONFIG (the local system's is .kok/dev/meta.kubeconfig)")

	// --kubeconfig wins over both, and must exist.
	flag := writeKubeconfig(t, dir, "flag.yaml", "https://flag.example:6443", "c", "c", "d")
	c, err = (&Flags{Kubeconfig: flag}).Connect()
	require.NoError(t, err)
	require.Equal(t, "https://flag.example:6443", c.Server)
	_, err = (&Flags{Kubeconfig: filepath.Join(dir, "nope.yaml")}).Connect()
	require.ErrorContains(t, err, "kubeconfig "+filepath.Join(dir, "nope.yaml")+" (from --kubeconfig): ")
	require.ErrorIs(t, err, os.ErrNotExist)

	c, err = (&Flags{Kubeconfig: flag, Context: "d"}).Connect()
	require.NoError(t, err)
	require.Equal(t, "d", c.Context)
	_, err = (&Flags{Kubeconfig: flag, Context: "e"}).Connect()
	require.EqualError(t, err, "kubeconfig "+flag+` has no context "e": pass --context with one it has (contexts "c", "d")`)

	nocurrent := writeKubeconfig(t, dir, "nocurrent.yaml", "https://x.example:6443", "", "c")
	_, err = (&Flags{Kubeconfig: nocurrent}).Connect()
	require.EqualError(t, err, "kubeconfig "+nocurrent+` has no current context: pass --context (it has contexts "c")`)
}

func TestClientKnowsCoreAndKokTypes(t *testing.T) {
	for _, obj := range []runtime.Object{&kokv1.Machine{}, &kokv1.MachineList{}, &corev1.Event{}, &corev1.EventList{}} {
		_, _, err := scheme.ObjectKinds(obj)
		require.NoError(t, err)
	}
}

func TestExplainSaysWhichServerCouldNotBeReached(t *testing.T) {
	// A port that was free a moment ago: nothing listens there, so the request is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	kc := writeKubeconfig(t, t.TempDir(), "kc", "http://"+addr, "local", "local")
	c, err := (&Flags{Kubeconfig: kc}).Connect()
	require.NoError(t, err)
	err = c.Explain(c.Client.List(context.Background(), &kokv1.MachineList{}), "list machines")
	require.ErrorContains(t, err, `list machines: cannot reach the API server at http://`+addr+` (context "local" of kubeconfig `+kc+`); is it running, and is this the cluster you meant?`)
}

func TestVerbNamesTheResourceTypesItKnows(t *testing.T) {
	var seen *Flags
	verb := NewVerbCommand(&cobra.Command{Use: "get"}, func(f *Flags) *cobra.Command {
		seen = f
		return &cobra.Command{Use: "things", RunE: func(*cobra.Command, []string) error { return nil }}
	}, func(*Flags) *cobra.Command {
		return &cobra.Command{Use: "widgets", RunE: func(*cobra.Command, []string) error { return nil }}
	})
	root := &cobra.Command{Use: "kok", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(verb)
	run := func(args ...string) error {
		root.SetArgs(append([]string{"get"}, args...))
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		return root.Execute()
	}
	require.EqualError(t, run(), "name a resource type: kok get TYPE, where TYPE is one of things, widgets")
	require.EqualError(t, run("gadgets"), `unknown resource type "gadgets" for kok get; use one of things, widgets`)
	require.NoError(t, run("things", "--kubeconfig", "/k", "--context", "x"))
	require.Equal(t, &Flags{Kubeconfig: "/k", Context: "x"}, seen)
	require.NoError(t, run("--context", "y", "things"))
	require.Equal(t, "y", seen.Context)
}
