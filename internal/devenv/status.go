package devenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kok.dev/internal/devenv/metacluster"
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
	probes := []struct {
		name  string
		part  Part
		check func(context.Context) (string, error)
	}{
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
	results := make([]Health, len(probes))
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
