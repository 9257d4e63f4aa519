package devenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/dev/devenv/metacluster"
)

// checkTimeout bounds each probe of Check.
const checkTimeout = 5 * time.Second

// Health is the result of probing one part.
type Health struct {
	Part    string
	Healthy bool
	// Detail says where the part answered, or what is wrong and where its log is.
	Detail string
}

// Check probes every part of the system running on stateDir, all at once, and returns one
// Health per part in start order. With no system running the error wraps ErrNotRunning.
func Check(ctx context.Context, stateDir string) (*State, []Health, error) {
	s, err := ReadState(stateDir)
	if err != nil {
		return nil, nil, err
	}
	type probe struct {
		name  string
		part  Part
		check func(context.Context) (string, error)
	}
	probes := []probe{
		{"temporal", s.Temporal, func(ctx context.Context) (string, error) { return checkTemporal(ctx, s) }},
		{"web-ui", s.WebUI, func(ctx context.Context) (string, error) { return s.WebUI.URL, httpOK(ctx, probeClient, s.WebUI.URL) }},
		{"codec-server", s.Codec, func(ctx context.Context) (string, error) {
			return s.Codec.URL, httpOK(ctx, probeClient, s.Codec.HealthURL)
		}},
		{metacluster.Etcd, s.Etcd, func(ctx context.Context) (string, error) {
			return s.Etcd.URL, metacluster.EtcdHealthy(ctx, probeClient, s.Etcd.URL)
		}},
		{metacluster.APIServer, s.APIServer, func(ctx context.Context) (string, error) { return checkAPIServer(ctx, s) }},
		{metacluster.ControllerManager, s.ControllerManager, func(ctx context.Context) (string, error) {
			return checkControllerManager(ctx, s)
		}},
		{"crds", Part{}, func(ctx context.Context) (string, error) { return checkCRDs(ctx, s) }},
		{ManagerName, s.Manager, func(ctx context.Context) (string, error) {
			return s.Manager.HealthURL, httpOK(ctx, probeClient, s.Manager.HealthURL)
		}},
	}
	for _, h := range s.Hosts {
		probes = append(probes, probe{"host/" + h.Name, h.Part, func(ctx context.Context) (string, error) {
			return fmt.Sprintf("%s on %s, pid %d", h.Role, h.Address, h.PID), childHealthy(ctx, h.Part)
		}})
	}
	if s.Kwok != nil {
		probes = append(probes, probe{KwokName, *s.Kwok, func(ctx context.Context) (string, error) {
			return s.Kwok.URL, childHealthy(ctx, *s.Kwok)
		}})
	}
	if d := s.Demo; d != nil {
		probes = append(probes,
			probe{"demo/cluster", Part{}, func(ctx context.Context) (string, error) { return checkDemoCluster(ctx, s) }},
			probe{"demo/nodes", Part{}, func(ctx context.Context) (string, error) {
				c, err := demoClient(d)
				if err != nil {
					return "", err
				}
				return nodesHealth(ctx, c, d.Workers, time.Now().Add(-leaseDuration))
			}},
			probe{"demo/app", Part{}, func(ctx context.Context) (string, error) {
				c, err := demoClient(d)
				if err != nil {
					return "", err
				}
				return appHealth(ctx, c)
			}},
		)
	}
	results := make([]Health, len(probes), len(probes)+1)
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			detail, err := p.check(ctx)
			results[i] = Health{Part: p.name, Healthy: err == nil, Detail: detail}
			if err != nil {
				results[i].Detail = err.Error()
				if p.part.Log != "" {
					results[i].Detail += " (log: " + p.part.Log + ")"
				}
			}
		})
	}
	wg.Wait()
	// Probes say how the parts are now; a demo that Up gave up on also lacks what the steps
	// after the failed one would have made (kwok, Machines, the Deployment).
	if s.Demo != nil && s.Demo.Problem != "" {
		results = append(results, Health{Part: "demo", Detail: "kok dev up gave up building it: " + s.Demo.Problem + " (run kok dev up again to finish it)"})
	}
	return s, results, nil
}

func checkTemporal(ctx context.Context, s *State) (string, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: s.Temporal.URL,
		Logger:   sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", s.Temporal.URL, err)
	}
	defer c.Close()
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace}); err != nil {
		return "", fmt.Errorf("namespace %s at %s: %w", s.Namespace, s.Temporal.URL, err)
	}
	return fmt.Sprintf("%s, namespace %s", s.Temporal.URL, s.Namespace), nil
}

func metaRESTConfig(s *State) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", s.Kubeconfig, err)
	}
	cfg.Timeout = checkTimeout
	return cfg, nil
}

func checkAPIServer(ctx context.Context, s *State) (string, error) {
	cfg, err := metaRESTConfig(s)
	if err != nil {
		return "", err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", fmt.Errorf("meta cluster client: %w", err)
	}
	return s.APIServer.URL, httpOK(ctx, hc, s.APIServer.HealthURL)
}

func checkControllerManager(ctx context.Context, s *State) (string, error) {
	data, err := os.ReadFile(s.CAFile)
	if err != nil {
		return "", fmt.Errorf("read CA: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%s holds no PEM certificate", s.CAFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", s.CAFile, err)
	}
	return s.ControllerManager.URL, httpOK(ctx, metacluster.CAHTTPClient(ca), s.ControllerManager.HealthURL)
}

func checkCRDs(ctx context.Context, s *State) (string, error) {
	if len(s.CRDs) == 0 {
		return "", errors.New("dev.json lists no CRDs")
	}
	cfg, err := metaRESTConfig(s)
	if err != nil {
		return "", err
	}
	if err := metacluster.CRDsEstablished(ctx, cfg, s.CRDs); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d established", len(s.CRDs)), nil
}

// childHealthy checks that a child process is alive, then that it answers.
func childHealthy(ctx context.Context, p Part) error {
	if p.PID > 0 && !alive(p.PID) {
		return fmt.Errorf("not running: pid %d exited", p.PID)
	}
	return httpOK(ctx, probeClient, p.HealthURL)
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func checkDemoCluster(ctx context.Context, s *State) (string, error) {
	cfg, err := metaRESTConfig(s)
	if err != nil {
		return "", err
	}
	c, err := newClient(cfg)
	if err != nil {
		return "", err
	}
	_, _, detail, err := clusterHealth(ctx, c, s.Demo.Name)
	return detail, err
}

func demoClient(d *Demo) (ctrlclient.Client, error) {
	data, err := os.ReadFile(d.Kubeconfig)
	if err != nil {
		return nil, err
	}
	c, _, err := clientFromKubeconfig(data)
	return c, err
}

// Unhealthy returns the names of the parts that are not healthy.
func Unhealthy(results []Health) []string {
	var names []string
	for _, h := range results {
		if !h.Healthy {
			names = append(names, h.Part)
		}
	}
	return names
}
