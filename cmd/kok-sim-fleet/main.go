// Command kok-sim-fleet runs many simulated hosts in one process (dev/simnode/fleet): each host
// serves its task queue kok-host-<host> with the real host activities on its own root directory,
// and a simulated kubelet keeps its Node Ready. Only the package services' processes are
// simulated. It is how one small machine holds thousands of nodes for scale tests.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"kok.dev/dev/simnode/fleet"
	"kok.dev/internal/tclient"
)

func main() {
	var (
		hosts         int
		prefix, root  string
		kubeconfig    string
		startRate     int
		temporalFlags tclient.Options
	)
	cmd := &cobra.Command{
		Use:   "kok-sim-fleet",
		Short: "Run many simulated hosts (real host activities, simulated processes) in one process",
		Example: `  kok-sim-fleet --hosts 1000 --prefix node --root /tmp/fleet \
    --kubeconfig business.kubeconfig --temporal-address 127.0.0.1:7233`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hosts <= 0 {
				return errors.New("--hosts must be at least 1")
			}
			if root == "" {
				return errors.New("--root is required: every host gets a directory under it")
			}
			if err := temporalFlags.Validate(); err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			o := fleet.Options{Root: root, Hosts: fleet.HostNames(prefix, hosts), StartRate: startRate, Logger: log}
			if kubeconfig != "" {
				cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
				}
				o.Kube = cfg
			}
			temporalFlags.Identity = "kok-sim-fleet"
			tc, err := tclient.Dial(cmd.Context(), temporalFlags, log)
			if err != nil {
				return err
			}
			defer tc.Close()
			o.Temporal = tc
			f, err := fleet.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer f.Stop()
			log.Info("fleet serving", "hosts", hosts, "prefix", prefix, "root", root)
			<-cmd.Context().Done()
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&hosts, "hosts", 100, "Number of simulated hosts.")
	fs.StringVar(&prefix, "prefix", "node", "Host names are <prefix>-00000, <prefix>-00001, ...; each is also its Node's and Machine's name.")
	fs.StringVar(&root, "root", "", "Directory holding one root directory per host.")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster the hosts' Nodes join; empty runs no kubelets.")
	fs.IntVar(&startRate, "start-rate", 100, "Hosts started per second.")
	temporalFlags.AddFlags(fs)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok-sim-fleet:", err)
		os.Exit(1)
	}
}
