package dev

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"kok.dev/internal/devenv"
)

// NewCommand returns `kok dev` with its subcommands.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole kok system on this machine",
		Long: `Run the whole kok system on this machine, for development and demos: an embedded Temporal
server with its Web UI, a meta cluster (etcd, kube-apiserver, kube-controller-manager) with
kok's CRDs, and kok-manager. Everything is kept in a state directory, so stopping and starting
again keeps every workflow and object.`,
	}
	cmd.AddCommand(newUpCommand(), newStatusCommand())
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
		Long: `Start the local system and keep it running until Ctrl-C (or SIGTERM), which stops every part
cleanly. A part that fails while up stops the whole system, and kok exits non-zero naming it
and its log.

Run it from a checkout after ` + "`make build k8s-bins generate`" + ` (or just ` + "`make run`" + `). Logs are in
<state-dir>/logs; ` + "`kok dev status`" + ` checks each part from another terminal.`,
		Example: `  kok dev up
  kok dev up --state-dir /tmp/kok-dev --apiserver-port 16443`,
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
			printBanner(cmd.OutOrStdout(), &r.State, userStateDir)
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
	f.StringVar(&cfg.ManagerBin, "manager-bin", cfg.ManagerBin, "kok-manager binary (default: next to this kok binary, where 'make build' puts it).")
	f.IntVar(&cfg.TemporalPort, "temporal-port", cfg.TemporalPort, "Port of the Temporal frontend (gRPC) on 127.0.0.1.")
	f.IntVar(&cfg.UIPort, "ui-port", cfg.UIPort, "Port of the Temporal Web UI on 127.0.0.1.")
	f.IntVar(&cfg.CodecPort, "codec-port", cfg.CodecPort, "Port of the codec server that lets the Web UI decrypt payloads.")
	f.IntVar(&cfg.APIServerPort, "apiserver-port", cfg.APIServerPort, "Port of the meta cluster's kube-apiserver on 127.0.0.1.")
	f.IntVar(&cfg.EtcdPort, "etcd-port", cfg.EtcdPort, "Client port of the meta cluster's etcd.")
	f.IntVar(&cfg.ControllerManagerPort, "controller-manager-port", cfg.ControllerManagerPort, "Port of kube-controller-manager's health endpoint.")
	f.IntVar(&cfg.ManagerProbePort, "manager-probe-port", cfg.ManagerProbePort, "Port of kok-manager's /healthz and /readyz.")
	f.IntVar(&cfg.ManagerMetricsPort, "manager-metrics-port", cfg.ManagerMetricsPort, "Port of kok-manager's /metrics.")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "How long each part may take to become ready.")
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

func printBanner(w io.Writer, s *devenv.State, userStateDir string) {
	kubeconfig := displayPath(s.Kubeconfig)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(w, "\nkok is up (state in %s)\n", userStateDir)
	for _, line := range [][2]string{
		{"Temporal Web UI", s.WebUI.URL + "/namespaces/" + s.Namespace + "/workflows"},
		{"Temporal", fmt.Sprintf("%s, namespace %s", s.Temporal.URL, s.Namespace)},
		{"meta cluster", s.APIServer.URL},
		{"kubeconfig", kubeconfig},
		{"logs", displayPath(filepath.Join(s.StateDir, "logs"))},
		{"try", "kubectl --kubeconfig " + kubeconfig + " get clusters"},
	} {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", line[0], line[1])
	}
	_ = tw.Flush()
	_, _ = fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

// displayPath shortens path to a relative one when it is under the working directory.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}
