// Command kok-sim-kubelet is the kubelet of kok's simulated hosts: installed as the kubelet
// package and run by kok-agent's supervisor, it registers its Node, renews its Lease and posts
// Ready status, so the node lives exactly as long as the program does. kwok plays the container
// runtime for the node's pods.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kok.dev/dev/simnode/health"
	"kok.dev/dev/simnode/kubelet"
)

func main() {
	var (
		kubeconfig, nodeName, version, socket       string
		cpu, memory, pods                           string
		leaseDuration, statusInterval, statusReport time.Duration
		registerSchedulable                         bool
	)
	cmd := &cobra.Command{
		Use:   "kok-sim-kubelet",
		Short: "Keep a simulated Node alive: register it, renew its Lease, post Ready status",
		Example: `  kok-sim-kubelet --kubeconfig /hosts/w1/etc/kubernetes/kubelet.kubeconfig --node-name w1 \
    --health-socket /hosts/w1/run/kok-sim/kubelet.sock`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" || nodeName == "" {
				return errors.New("--kubeconfig and --node-name are required")
			}
			capacity := corev1.ResourceList{}
			for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory, corev1.ResourcePods: pods} {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					return fmt.Errorf("--%s %q: %w", name, v, err)
				}
				capacity[name] = q
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			cfg.UserAgent = "kok-sim-kubelet/" + version
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			k := kubelet.New(client, nodeName, kubelet.Options{
				Version: version, LeaseDuration: leaseDuration, StatusInterval: statusInterval, StatusReportInterval: statusReport,
				Capacity: capacity, RegisterSchedulable: registerSchedulable, Logger: log,
			})
			ctx := cmd.Context()
			if socket != "" {
				go func() {
					if err := health.Serve(ctx, socket, version, k.Healthy); err != nil {
						log.Error("health endpoint stopped", "err", err)
					}
				}()
			}
			return k.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster the node joins.")
	f.StringVar(&nodeName, "node-name", "", "Name of the Node.")
	f.StringVar(&version, "version", "v0.0.0-kok-sim", "Kubelet version the node reports.")
	f.DurationVar(&leaseDuration, "lease-duration", 40*time.Second, "Duration of the node's Lease; it is renewed every quarter of it.")
	f.DurationVar(&statusInterval, "status-interval", 10*time.Second, "Time between two checks of the node's status (the kubelet's nodeStatusUpdateFrequency).")
	f.DurationVar(&statusReport, "status-report-interval", 5*time.Minute, "Longest time an unchanged node status goes unwritten (the kubelet's nodeStatusReportFrequency).")
	f.StringVar(&socket, "health-socket", "", "Unix socket serving /healthz (healthy while the Lease is fresh) and /version.")
	f.StringVar(&cpu, "cpu", "8", "CPU capacity the node reports.")
	f.StringVar(&memory, "memory", "32Gi", "Memory capacity the node reports.")
	f.StringVar(&pods, "pods", "110", "Pod capacity the node reports.")
	f.BoolVar(&registerSchedulable, "register-schedulable", false, "Register a new Node schedulable. Under kok leave it off: the Machine workflow uncordons the node once its readiness gates pass.")
	cmd.AddCommand(health.ProbeCommand("kubelet"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok-sim-kubelet:", err)
		os.Exit(1)
	}
}
