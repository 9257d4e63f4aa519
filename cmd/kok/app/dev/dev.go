package dev

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kok.dev/dev/devenv"
)

// NewCommand returns `kok dev` with its subcommands.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole kok system on this machine",
		Long: `Run the whole kok system on this machine, for development and demos: an embedded Temporal
server with its Web UI, a meta cluster (etcd, kube-apiserver, kube-controller-manager) with
kok's CRDs, kok-manager, simulated hosts, and a demo business cluster with its nodes and a
Deployment, built by kok's own workflows. Everything is kept in a state directory, so stopping
and starting again keeps every workflow and object.`,
	}
	cmd.AddCommand(newUpCommand(), newStatusCommand(), newDownCommand())
	return cmd
}

func newUpCommand() *cobra.Command {
	cfg := devenv.DefaultConfig()
	if bins := os.Getenv("KOK_K8S_BINS"); bins != "" {
		cfg.K8sBins = bins
	}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local system and keep it running in the foreground",
		Long: `Start the local system and keep it running until Ctrl-C, SIGTERM or ` + "`kok dev down`" + `, which stop
every part cleanly. In order: the codec server, Temporal and its Web UI, the meta cluster, kok's
CRDs, kok-manager, then the demo: one kok-agent per simulated host (--masters, --workers), the
control-plane catalogue, the Cluster "demo" (created by kok-manager's Cluster workflow on the
master hosts), its node catalogue and one Machine per worker (the Machine workflows install the
node packages through the agents; kwok plays the pods), and a Deployment on the nodes.

A part of the system that fails while up (Temporal, the meta cluster, kok-manager) stops the
whole system, and kok exits non-zero naming it and its log. A simulated host or kwok that dies
is reported by name and the rest keeps running. A demo that does not become ready is reported
and stops nothing, so that the Web UI and the objects show why.

On the same state directory a second run recreates nothing: objects that exist are left as
they are, and the agents start their installed services again.

Run it from a checkout after ` + "`make build k8s-bins kwok`" + ` (or just ` + "`make run`" + `). Logs are in
<state-dir>/logs; ` + "`kok dev status`" + ` checks each part from another terminal.`,
		Example: `  kok dev up
  kok dev up --workers 5
  kok dev up --state-dir /tmp/kok-dev --apiserver-port 16443 --demo=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			userStateDir := cfg.StateDir
			cfg.Progress = cmd.ErrOrStderr()
			r, err := devenv.Up(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					_, _ = fmt.Fprintln(cmd.ErrOrStderr(), "interrupted; everything that had started is stopped")
					return nil //nolint:nilerr // Ctrl-C while starting is a clean stop, like Ctrl-C later
				}
				return err
			}
			printBanner(cmd.OutOrStdout(), &r.State, userStateDir, cfg.K8sBins)
			go func() {
				<-ctx.Done()
				_, _ = fmt.Fprintln(cmd.ErrOrStderr(), "stopping (press Ctrl-C again to kill everything at once)")
				// From now on a signal takes its default action: kok dies and the kernel kills
				// its children with it.
				signal.Reset(os.Interrupt, syscall.SIGTERM)
			}()
			if err := r.Wait(); err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.ErrOrStderr(), "stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "Directory holding everything the system keeps between runs (workflows, etcd data, certificates, logs).")
	f.StringVar(&cfg.K8sBins, "k8s-bins", cfg.K8sBins, "Directory with etcd, kube-apiserver and kube-controller-manager, as 'make k8s-bins' builds them (env KOK_K8S_BINS).")
	f.StringVar(&cfg.CRDDir, "crds", cfg.CRDDir, "Directory with the CRD manifests to install, as 'make generate' writes them.")
	f.StringVar(&cfg.ManagerBin, "manager-bin", cfg.ManagerBin, "kok-manager binary (default: next to this kok binary, where 'make build' puts it); also the demo cluster's machine operator.")
	f.BoolVar(&cfg.Demo, "demo", cfg.Demo, "Bring up the demo cluster on simulated hosts; --demo=false runs only Temporal, the meta cluster and kok-manager.")
	f.IntVar(&cfg.Masters, "masters", cfg.Masters, "Master hosts of the demo cluster: 1, 3 or 5 (on a new state only).")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "Worker hosts of the demo cluster, one Machine each.")
	f.StringVar(&cfg.AgentBin, "agent-bin", devenv.DefaultConfig().AgentBin, "kok-agent binary of the simulated hosts (default: next to this kok binary).")
	f.StringVar(&cfg.KwokBin, "kwok-bin", cfg.KwokBin, "kwok binary, as 'make kwok' builds it.")
	f.StringVar(&cfg.KwokStages, "kwok-stages", cfg.KwokStages, "kwok configuration for nodes that simulated kubelets register.")
	f.StringVar(&cfg.NodePackages, "node-packages", cfg.NodePackages, "Directory with catalogue.yaml and the node packages, as 'make node-packages' writes them.")
	f.StringSliceVar(&cfg.ClusterVersions, "cluster-versions", nil, "Kubernetes releases of the control-plane catalogue, built beside --k8s-bins (default: every release there).")
	f.StringVar(&cfg.DemoVersion, "demo-version", "", "Release the demo cluster is created at (default: the oldest, so that there is one to upgrade to).")
	f.IntVar(&cfg.TemporalPort, "temporal-port", cfg.TemporalPort, "Port of the Temporal frontend (gRPC) on 127.0.0.1.")
	f.IntVar(&cfg.UIPort, "ui-port", cfg.UIPort, "Port of the Temporal Web UI on 127.0.0.1.")
	f.IntVar(&cfg.CodecPort, "codec-port", cfg.CodecPort, "Port of the codec server that lets the Web UI decrypt payloads.")
	f.IntVar(&cfg.APIServerPort, "apiserver-port", cfg.APIServerPort, "Port of the meta cluster's kube-apiserver on 127.0.0.1.")
	f.IntVar(&cfg.EtcdPort, "etcd-port", cfg.EtcdPort, "Client port of the meta cluster's etcd.")
	f.IntVar(&cfg.ControllerManagerPort, "controller-manager-port", cfg.ControllerManagerPort, "Port of kube-controller-manager's health endpoint.")
	f.IntVar(&cfg.ManagerProbePort, "manager-probe-port", cfg.ManagerProbePort, "Port of kok-manager's /healthz and /readyz.")
	f.IntVar(&cfg.ManagerMetricsPort, "manager-metrics-port", cfg.ManagerMetricsPort, "Port of kok-manager's /metrics.")
	f.IntVar(&cfg.AgentMetricsPort, "agent-metrics-port", cfg.AgentMetricsPort, "Port of each simulated host's kok-agent /metrics and /healthz, on the host's own address (127.0.0.2, ...).")
	f.IntVar(&cfg.KwokPort, "kwok-port", cfg.KwokPort, "Port of kwok's /healthz on 127.0.0.1.")
	f.IntVar(&cfg.DemoAPIServerPort, "demo-apiserver-port", cfg.DemoAPIServerPort, "The demo cluster's API server port on its master; its other components take the next six ports.")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "How long each part may take to become ready.")
	f.DurationVar(&cfg.DemoTimeout, "demo-timeout", cfg.DemoTimeout, "How long the demo cluster, its nodes and its Deployment may each take to become ready.")
	f.DurationVar(&cfg.StopGrace, "stop-grace", cfg.StopGrace, "How long each child may take to stop after SIGTERM before it is killed.")
	return cmd
}

func newStatusCommand() *cobra.Command {
	stateDir := devenv.DefaultStateDir
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Check every part of the running local system",
		Long: `Check every part of the system that ` + "`kok dev up`" + ` runs on the state directory and print one
line per part. Exits 0 only when every part is healthy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, results, err := devenv.Check(cmd.Context(), stateDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			_, _ = fmt.Fprintf(out, "kok dev up (pid %d) on %s, up since %s\n", s.PID, s.StateDir, s.StartedAt.Local().Format("2006-01-02 15:04:05"))
			printHealth(out, results)
			if bad := devenv.Unhealthy(results); len(bad) > 0 {
				return fmt.Errorf("%d of %d parts unhealthy: %s", len(bad), len(results), strings.Join(bad, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDir, "State directory of the 'kok dev up' to check.")
	return cmd
}

func printHealth(w io.Writer, results []devenv.Health) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range results {
		state := "healthy"
		if !h.Healthy {
			state = "UNHEALTHY"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Part, state, h.Detail)
	}
	_ = tw.Flush()
}

func newDownCommand() *cobra.Command {
	stateDir := devenv.DefaultStateDir
	purge := false
	timeout := devenv.DefaultDownTimeout
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local system; with --purge, delete its state too",
		Long: `Stop the ` + "`kok dev up`" + ` running on the state directory, as Ctrl-C in its terminal would, and wait
until every part has stopped. With --purge, then delete the state directory: every workflow,
object, certificate, simulated host and log, so that the next ` + "`kok dev up`" + ` starts afresh.`,
		Example: `  kok dev down
  kok dev down --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			running, err := devenv.Down(cmd.Context(), stateDir, timeout)
			if err != nil {
				return err
			}
			if running {
				_, _ = fmt.Fprintf(out, "stopped kok dev up on %s\n", stateDir)
			} else {
				_, _ = fmt.Fprintf(out, "kok dev up is not running on %s\n", stateDir)
			}
			if purge {
				if err := devenv.Purge(stateDir); err != nil {
					return err
				}
				_, _ = fmt.Fprintf(out, "deleted %s\n", stateDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDir, "State directory of the 'kok dev up' to stop.")
	cmd.Flags().BoolVar(&purge, "purge", purge, "Delete the state directory once stopped.")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "How long to wait for a clean stop before killing kok dev up (its children die with it).")
	return cmd
}

func printBanner(w io.Writer, s *devenv.State, userStateDir, k8sBins string) {
	meta := devenv.DisplayPath(s.Kubeconfig)
	kok := devenv.DisplayPath(executable())
	kubectl := filepath.Join(k8sBins, "kubectl")
	if abs, err := filepath.Abs(kubectl); err == nil {
		kubectl = devenv.DisplayPath(abs)
	}
	ui := s.WebUI.URL + "/namespaces/" + s.Namespace + "/workflows"
	_, _ = fmt.Fprintf(w, "\nkok is up in %s (state in %s)\n", time.Duration(s.ReadySeconds*float64(time.Second)).Round(time.Second), userStateDir)
	lines := [][2]string{
		{"Temporal Web UI", ui},
		{"Temporal", fmt.Sprintf("%s, namespace %s", s.Temporal.URL, s.Namespace)},
		{"meta cluster", s.APIServer.URL + ", kubeconfig " + meta},
	}
	d := s.Demo
	if d != nil && d.Endpoint == "" {
		lines = append(lines, [2]string{"demo cluster", "not ready (see below)"})
	} else if d != nil {
		lines = append(lines, [2]string{"demo cluster", fmt.Sprintf("%s, kubeconfig %s (or: %s kubeconfig %s --kubeconfig %s)", orDash(d.Endpoint), devenv.DisplayPath(d.Kubeconfig), kok, d.Name, meta)})
	}
	lines = append(lines, [2]string{"logs", devenv.DisplayPath(filepath.Join(s.StateDir, "logs"))})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, line := range lines {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", line[0], line[1])
	}
	_ = tw.Flush()

	switch {
	case d == nil:
		_, _ = fmt.Fprintf(w, "\nTry: %s --kubeconfig %s get clusters\n", kubectl, meta)
	case d.Problem != "":
		_, _ = fmt.Fprintf(w, "\nThe demo cluster is NOT ready: %s\nThe rest runs: look at %s/%s and %s describe cluster %s --kubeconfig %s\n",
			d.Problem, s.WebUI.URL+"/namespaces/"+s.Namespace+"/workflows", url.PathEscape("Cluster/"+d.Name), kok, d.Name, meta)
	default:
		demo := devenv.DisplayPath(d.Kubeconfig)
		_, _ = fmt.Fprintf(w, "\nThe demo cluster runs %s with %d Ready nodes and Deployment %s: %s --kubeconfig %s get nodes,pods -A\n",
			d.Version, len(d.Workers), d.Deployment, kubectl, demo)
		_, _ = fmt.Fprintln(w, "\nThree things to try:")
		switch {
		case d.UpgradeTo != "":
			_, _ = fmt.Fprintf(w, "  1. Upgrade its control plane to %s, a canary master first, component by component:\n       %s cluster upgrade %s --to %s --kubeconfig %s\n",
				d.UpgradeTo, kok, d.Name, d.UpgradeTo, meta)
		case d.RollbackTo != "":
			_, _ = fmt.Fprintf(w, "  1. Roll its control plane back to %s, the release it ran before (etcd stays newer):\n       %s cluster rollback %s --kubeconfig %s\n",
				d.RollbackTo, kok, d.Name, meta)
		default:
			_, _ = fmt.Fprintf(w, "  1. Upgrade its control plane to another release (`%s --kubeconfig %s get clusterpackageversions` lists them):\n       %s cluster upgrade %s --to VERSION --kubeconfig %s\n",
				kubectl, meta, kok, d.Name, meta)
		}
		if c := d.PackageChange; c != nil {
			_, _ = fmt.Fprintf(w, "  2. Change a node package (%s %s -> %s on %s) and watch the Machine converge:\n       %s --kubeconfig %s patch machine %s --type json -p '[{\"op\":\"replace\",\"path\":\"/spec/packages/%d/version\",\"value\":\"%s\"}]'\n       %s get machines --kubeconfig %s\n",
				c.Package, c.From, c.To, c.Machine, kubectl, demo, c.Machine, c.Index, c.To, kok, demo)
		} else {
			_, _ = fmt.Fprintf(w, "  2. Change a node package: edit spec.packages of a Machine (%s --kubeconfig %s edit machine %s)\n", kubectl, demo, d.Workers[0])
		}
		machine := d.Workers[0]
		if d.PackageChange != nil {
			machine = d.PackageChange.Machine
		}
		_, _ = fmt.Fprintf(w, "  3. Watch both as workflows in the Web UI, every step an activity:\n       %s/%s\n       %s/%s\n",
			ui, url.PathEscape("Cluster/"+d.Name), ui, url.PathEscape("Machine/"+d.Name+"/"+machine))
	}
	stateFlag := ""
	if filepath.Clean(userStateDir) != filepath.Clean(devenv.DefaultStateDir) {
		stateFlag = " --state-dir " + userStateDir
	}
	_, _ = fmt.Fprintf(w, "\nHealth of every part: %s dev status%s. Stop: Ctrl-C or %s dev down%s (--purge deletes the state).\n", kok, stateFlag, kok, stateFlag)
	_, _ = fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func executable() string {
	exe, err := os.Executable()
	if err != nil {
		return "kok"
	}
	return exe
}
