package metacluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kok.dev/dev/devenv/pki"
	"kok.dev/dev/devenv/supervisor"
)

// Component names: process names in messages and log file stems.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
)

// Binaries are the programs Start needs in Config.BinDir.
var Binaries = []string{Etcd, APIServer, ControllerManager}

// AdminKubeconfig is the admin kubeconfig's file name in the state directory.
const AdminKubeconfig = "meta.kubeconfig"

const (
	ip = "127.0.0.1"
	// serviceCIDR is the cluster's service range; its first address is the apiserver's
	// in-cluster IP and must be in the serving certificate.
	serviceCIDR    = "10.0.0.0/24"
	serviceIP      = "10.0.0.1"
	adminCert      = "admin"
	apiserverCert  = "apiserver"
	kcmClientCert  = "kube-controller-manager"
	kcmServingCert = "kube-controller-manager-serving"
	frontProxyCert = "front-proxy-client"
	pollEvery      = 200 * time.Millisecond
)

// Config says where the binaries and the state are, and which ports to use.
type Config struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager.
	BinDir string
	// Dir is the state directory (see the package doc for its layout).
	Dir                   string
	EtcdPort              int
	APIServerPort         int
	ControllerManagerPort int
	// ReadyTimeout bounds the wait for each component to become ready.
	ReadyTimeout time.Duration
	// StopGrace is how long each component gets between SIGTERM and SIGKILL.
	StopGrace time.Duration
}

// Cluster is a running meta cluster.
type Cluster struct {
	cfg       Config
	group     *supervisor.Group
	rest      *rest.Config
	etcd      *supervisor.Process
	apiserver *supervisor.Process
	kcm       *supervisor.Process
}

// CheckBinaries fails with a message the user can act on when a binary is missing.
func CheckBinaries(dir string) error {
	for _, name := range Binaries {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return fmt.Errorf("%s not found or not executable in %s: run `make k8s-bins` (or pass --k8s-bins)", name, dir)
		}
	}
	return nil
}

// Start runs etcd, kube-apiserver and kube-controller-manager one after the other, each once
// the previous one is ready, and writes the kubeconfigs. On failure whatever started is
// stopped again and the error carries the end of the failing component's log.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := CheckBinaries(cfg.BinDir); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	p, err := pki.Ensure(filepath.Join(cfg.Dir, "pki"), certs())
	if err != nil {
		return nil, fmt.Errorf("meta cluster certificates: %w", err)
	}
	restCfg, err := adminRESTConfig(p, cfg.APIServerPort)
	if err != nil {
		return nil, err
	}
	if err := writeKubeconfig(filepath.Join(cfg.Dir, AdminKubeconfig), restCfg.Host, p, adminCert, "kok-admin"); err != nil {
		return nil, err
	}
	kcmKubeconfig := filepath.Join(cfg.Dir, ControllerManager+".kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, restCfg.Host, p, kcmClientCert, "system:kube-controller-manager"); err != nil {
		return nil, err
	}

	c := &Cluster{cfg: cfg, group: supervisor.NewGroup(), rest: restCfg}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()

	if c.etcd, err = c.start(Etcd, c.etcdArgs()); err != nil {
		return nil, err
	}
	etcdHTTP := &http.Client{Timeout: 5 * time.Second}
	if err := waitReady(ctx, cfg.ReadyTimeout, c.etcd, func(ctx context.Context) error {
		return EtcdHealthy(ctx, etcdHTTP, c.EtcdURL())
	}); err != nil {
		return nil, err
	}

	if c.apiserver, err = c.start(APIServer, c.apiserverArgs(p)); err != nil {
		return nil, err
	}
	apiHTTP, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		return nil, fmt.Errorf("meta cluster client: %w", err)
	}
	if err := waitReady(ctx, cfg.ReadyTimeout, c.apiserver, func(ctx context.Context) error {
		return httpOK(ctx, apiHTTP, restCfg.Host+"/readyz")
	}); err != nil {
		return nil, err
	}

	if c.kcm, err = c.start(ControllerManager, c.controllerManagerArgs(p, kcmKubeconfig)); err != nil {
		return nil, err
	}
	kcmHTTP := CAHTTPClient(p.CA)
	if err := waitReady(ctx, cfg.ReadyTimeout, c.kcm, func(ctx context.Context) error {
		return httpOK(ctx, kcmHTTP, c.ControllerManagerHealthURL())
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// RESTConfig is admin access to the cluster.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// Kubeconfig is the path of the admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.cfg.Dir, AdminKubeconfig) }

// APIServerURL is the https address of kube-apiserver.
func (c *Cluster) APIServerURL() string { return c.rest.Host }

// EtcdURL is etcd's client address.
func (c *Cluster) EtcdURL() string { return "http://" + hostPort(c.cfg.EtcdPort) }

// ControllerManagerHealthURL is kube-controller-manager's health endpoint; its certificate is
// signed by the cluster CA.
func (c *Cluster) ControllerManagerHealthURL() string {
	return "https://" + hostPort(c.cfg.ControllerManagerPort) + "/healthz"
}

// CAFile is the cluster CA certificate, which also signs kube-controller-manager's serving
// certificate.
func (c *Cluster) CAFile() string { return filepath.Join(c.cfg.Dir, "pki", "ca.crt") }

// Processes returns the running components in start order.
func (c *Cluster) Processes() []*supervisor.Process {
	var procs []*supervisor.Process
	for _, p := range []*supervisor.Process{c.etcd, c.apiserver, c.kcm} {
		if p != nil {
			procs = append(procs, p)
		}
	}
	return procs
}

// Exited delivers the first component that exited without being stopped.
func (c *Cluster) Exited() <-chan *supervisor.ExitError { return c.group.Exited() }

// Stop stops the components in reverse start order. The state stays for the next Start.
func (c *Cluster) Stop() error { return c.group.Stop(c.cfg.StopGrace) }

func (cfg *Config) validate() error {
	if cfg.BinDir == "" || cfg.Dir == "" {
		return errors.New("meta cluster: BinDir and Dir must be set")
	}
	ports := map[int]string{}
	for name, port := range map[string]int{
		Etcd: cfg.EtcdPort, APIServer: cfg.APIServerPort, ControllerManager: cfg.ControllerManagerPort,
	} {
		if port <= 0 || port > 65535 {
			return fmt.Errorf("meta cluster: %s port %d is not a TCP port", name, port)
		}
		if other, ok := ports[port]; ok {
			return fmt.Errorf("meta cluster: %s and %s both use port %d", name, other, port)
		}
		ports[port] = name
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	return nil
}

func certs() []pki.Cert {
	loopback := []net.IP{net.ParseIP(ip), net.IPv6loopback}
	return []pki.Cert{
		{
			Name:       apiserverCert,
			CommonName: APIServer,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"},
			IPs: append(loopback, net.ParseIP(serviceIP)),
		},
		{
			Name:         adminCert,
			CommonName:   "kok-admin",
			Organization: []string{"system:masters"},
			Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			// The name the bootstrap RBAC policy grants the controller manager's permissions to.
			Name:       kcmClientCert,
			CommonName: "system:kube-controller-manager",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			// The aggregation layer's identity towards extension API servers; also what lets
			// kube-controller-manager find the request-header CA it looks up on start.
			Name:       frontProxyCert,
			CommonName: frontProxyCert,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			Name:       kcmServingCert,
			CommonName: ControllerManager,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:   []string{"localhost"},
			IPs:        loopback,
		},
	}
}

func (c *Cluster) start(name string, args []string) (*supervisor.Process, error) {
	return c.group.Start(supervisor.Spec{
		Name:    name,
		Path:    filepath.Join(c.cfg.BinDir, name),
		Args:    args,
		LogPath: filepath.Join(c.cfg.Dir, "logs", name+".log"),
	})
}

func (c *Cluster) etcdArgs() []string {
	return []string{
		"--data-dir=" + filepath.Join(c.cfg.Dir, "etcd"),
		"--listen-client-urls=" + c.EtcdURL(),
		"--advertise-client-urls=" + c.EtcdURL(),
		// A single member has no peers; port 0 keeps the default peer port free.
		"--listen-peer-urls=http://" + ip + ":0",
	}
}

func (c *Cluster) apiserverArgs(p *pki.PKI) []string {
	return []string{
		"--etcd-servers=" + c.EtcdURL(),
		"--bind-address=" + ip,
		"--advertise-address=" + ip,
		// The endpoint reconciler refuses a loopback address, and nothing in the meta cluster
		// reaches the apiserver through the in-cluster `kubernetes` Service yet.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.cfg.APIServerPort),
		"--tls-cert-file=" + p.CertFile(apiserverCert),
		"--tls-private-key-file=" + p.KeyFile(apiserverCert),
		"--client-ca-file=" + p.CACertFile(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.ServiceAccountPublicKeyFile(),
		"--service-account-signing-key-file=" + p.ServiceAccountKeyFile(),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=RBAC",
		// One CA for everything; only the front-proxy-client name may assert X-Remote-* headers.
		"--requestheader-client-ca-file=" + p.CACertFile(),
		"--requestheader-allowed-names=" + frontProxyCert,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.CertFile(frontProxyCert),
		"--proxy-client-key-file=" + p.KeyFile(frontProxyCert),
		"--allow-privileged=true",
		// Never fall back to /var/run/kubernetes, which a user may not own.
		"--cert-dir=" + filepath.Join(c.cfg.Dir, "pki"),
	}
}

func (c *Cluster) controllerManagerArgs(p *pki.PKI, kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=" + ip,
		"--secure-port=" + strconv.Itoa(c.cfg.ControllerManagerPort),
		"--tls-cert-file=" + p.CertFile(kcmServingCert),
		"--tls-private-key-file=" + p.KeyFile(kcmServingCert),
		"--client-ca-file=" + p.CACertFile(),
		"--root-ca-file=" + p.CACertFile(),
		"--service-account-private-key-file=" + p.ServiceAccountKeyFile(),
		"--cluster-signing-cert-file=" + p.CACertFile(),
		"--cluster-signing-key-file=" + p.CAKeyFile(),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--use-service-account-credentials=true",
		// One instance: leader election would only delay the start.
		"--leader-elect=false",
		"--cert-dir=" + filepath.Join(c.cfg.Dir, "pki"),
	}
}

func adminRESTConfig(p *pki.PKI, port int) (*rest.Config, error) {
	certPEM, keyPEM, err := p.Pair(adminCert)
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host: "https://" + hostPort(port),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.CAPEM(),
			CertData: certPEM,
			KeyData:  keyPEM,
		},
		// The local cluster serves one user; client-side throttling would only slow tests.
		QPS:   -1,
		Burst: -1,
	}, nil
}

// writeKubeconfig embeds the certificates so the file works wherever it is copied.
func writeKubeconfig(path, server string, p *pki.PKI, cert, user string) error {
	certPEM, keyPEM, err := p.Pair(cert)
	if err != nil {
		return err
	}
	const name = "kok-dev"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.CAPEM()}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// waitReady polls check until it passes, the process exits, the timeout passes or ctx ends.
// Every failure carries the end of the component's log.
func waitReady(ctx context.Context, timeout time.Duration, proc *supervisor.Process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		checkCtx, cancelCheck := context.WithTimeout(ctx, 5*time.Second)
		err := check(checkCtx)
		cancelCheck()
		if err == nil {
			return nil
		}
		select {
		case <-proc.Done():
			return proc.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last check: %w); log: %s\n--- last lines of %s ---\n%s",
				proc.Name(), timeout, err, proc.LogPath(), proc.LogPath(),
				proc.LogTail(supervisor.TailLines))
		case <-ticker.C:
		}
	}
}

// EtcdHealthy checks etcd's /health endpoint once.
func EtcdHealthy(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var health struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&health); err != nil {
		return fmt.Errorf("etcd /health: %w", err)
	}
	if health.Health != "true" {
		return fmt.Errorf("etcd unhealthy: %s", health.Reason)
	}
	return nil
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// CAHTTPClient trusts only ca, as the controller manager's health endpoint needs.
func CAHTTPClient(ca *x509.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
	}
}

func hostPort(port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
