package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
)

// CheckParams names the masters to check.
type CheckParams struct {
	Cluster string
	Masters []process.Master
	Port    int
}

// MasterCheck is what one master's kube-apiserver says of itself.
type MasterCheck struct {
	Host string
	// Ready: /readyz answers 200, which includes the etcd check (the member it reaches
	// is healthy and has a quorum).
	Ready bool
	// Why is the failing part of /readyz?verbose, or the connection error.
	Why string
	// GitVersion is the kube-apiserver's version (/version), "" when unreachable.
	GitVersion string
	// NoAnswer: the kube-apiserver gave no HTTP answer at all (connection refused or timed
	// out, TLS failed). On its own that does not tell a dead API server from a network that
	// cannot reach a live one; the workflow asks the master's agent before it calls it a fault.
	NoAnswer bool `json:",omitempty"`
}

// CheckResult is every master's check, in the order asked.
type CheckResult struct {
	Masters []MasterCheck
}

// CheckControlPlane asks each master's kube-apiserver, as the cluster's administrator, for
// /readyz?verbose and /version. It never fails for an unhealthy master — that is a result —
// only when the admin kubeconfig cannot be read.
func (a *Activities) CheckControlPlane(ctx context.Context, p CheckParams) (CheckResult, error) {
	base, err := a.adminConfig(ctx, p.Cluster)
	if err != nil {
		return CheckResult{}, err
	}
	return a.checkAll(ctx, base, p), nil
}

// adminConfig is the REST config of the cluster's administrator, from its kubeconfig Secret.
func (a *Activities) adminConfig(ctx context.Context, cluster string) (*rest.Config, error) {
	kc, err := pkiacts.AdminKubeconfig(ctx, a.Client, cluster, "")
	if err != nil {
		return nil, err
	}
	base, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, fmt.Errorf("admin kubeconfig of %s: %w", cluster, err)
	}
	return base, nil
}

// checkAll checks every master at once.
func (a *Activities) checkAll(ctx context.Context, base *rest.Config, p CheckParams) CheckResult {
	timeout := a.ProbeTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	res := CheckResult{Masters: make([]MasterCheck, len(p.Masters))}
	var wg sync.WaitGroup
	for i, m := range p.Masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Masters[i] = checkMaster(ctx, base, m, p.Port, timeout)
		}()
	}
	wg.Wait()
	return res
}

func checkMaster(ctx context.Context, base *rest.Config, m process.Master, port int, timeout time.Duration) MasterCheck {
	out := MasterCheck{Host: m.Host}
	cfg := rest.CopyConfig(base)
	cfg.Host = "https://" + net.JoinHostPort(m.IP, strconv.Itoa(port))
	cfg.Timeout = timeout
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		out.Why = err.Error()
		return out
	}
	hc := &http.Client{Transport: rt, Timeout: timeout}
	get := func(path string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+path, nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, body, err
	}
	if code, body, err := get("/version"); err == nil && code == http.StatusOK {
		var v struct{ GitVersion string }
		if json.Unmarshal(body, &v) == nil {
			out.GitVersion = v.GitVersion
		}
	}
	code, body, err := get("/readyz?verbose")
	switch {
	case err != nil:
		out.Why, out.NoAnswer = "kube-apiserver unreachable: "+err.Error(), true
	case code != http.StatusOK:
		out.Why = "readyz: " + failing(string(body))
	default:
		out.Ready = true
	}
	return out
}

// failing keeps the failed checks of a verbose readyz answer ("[-]etcd failed: ...").
func failing(body string) string {
	var bad []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			bad = append(bad, strings.TrimPrefix(l, "[-]"))
		}
	}
	if len(bad) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(bad, "; ")
}
