package temporalserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"kok.dev/contract/search"
)

const (
	clusterName = "active"
	pollEvery   = 200 * time.Millisecond
)

// Config says where the server keeps its state and where it listens.
type Config struct {
	// DBFile is the sqlite database. It is created with the schema when missing and reused
	// as it is otherwise.
	DBFile string
	// IP is the address every listener binds to; 127.0.0.1 when empty.
	IP string
	// FrontendPort is the gRPC port clients and workers dial.
	FrontendPort int
	// UIPort serves the Web UI; 0 runs no UI.
	UIPort int
	// Namespaces are registered on start; those already in DBFile are kept as they are.
	// The first one is the namespace the Web UI opens.
	Namespaces []string
	// LogFile receives the server's logs (JSON lines, appended).
	LogFile string
	// CodecEndpoint is the codec server the Web UI asks to decode payloads; empty for none.
	CodecEndpoint string
}

// Server is a running Temporal server with its Web UI.
type Server struct {
	cfg    Config
	server temporal.Server
	ui     *uiserver.Server
	logs   *logFile
}

// Start runs the server and returns once the frontend answers for every namespace and the
// Web UI (if any) serves its page, or ctx ends.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if err := checkPortsFree(cfg.IP, cfg.FrontendPort, cfg.UIPort); err != nil {
		return nil, err
	}
	sqlCfg, err := prepareDB(cfg)
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(filepath.Dir(cfg.LogFile), 0o755); err != nil {
		return nil, fmt.Errorf("create temporal log dir: %w", err)
	}
	f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open temporal log: %w", err)
	}
	logs := &logFile{f: f}
	s := &Server{cfg: cfg, logs: logs}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()

	opts, err := serverOptions(cfg, sqlCfg, logs)
	if err != nil {
		return nil, err
	}
	srv, err := temporal.NewServer(opts...)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server (log: %s): %w", cfg.LogFile, err)
	}
	s.server = srv

	if cfg.UIPort != 0 {
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(uiConfig(cfg)))
		// Start blocks until Stop; a bind failure exits the process inside ui-server, which
		// is why the port was checked above.
		go func() { _ = s.ui.Start() }()
	}

	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := s.defineSearchAttributes(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// defineSearchAttributes defines kok's KokCluster and KokKind in every namespace: the watchers
// start every workflow with them, and the server refuses a start carrying undefined ones.
func (s *Server) defineSearchAttributes(ctx context.Context) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: s.Address(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("dial temporal server: %w", err)
	}
	defer c.Close()
	for _, ns := range s.cfg.Namespaces {
		if err := search.EnsureDefined(ctx, c, ns); err != nil {
			return err
		}
	}
	return nil
}

// Address is the frontend's host:port.
func (s *Server) Address() string {
	return net.JoinHostPort(s.cfg.IP, strconv.Itoa(s.cfg.FrontendPort))
}

// UIURL is the Web UI's address, or "" when it does not run.
func (s *Server) UIURL() string {
	if s.cfg.UIPort == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(s.cfg.IP, strconv.Itoa(s.cfg.UIPort))
}

// Stop shuts the Web UI and the server down.
func (s *Server) Stop() error {
	var errs []error
	if s.ui != nil {
		s.ui.Stop()
		s.ui = nil
	}
	if s.server != nil {
		if err := s.server.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop temporal server: %w", err))
		}
		s.server = nil
	}
	if s.logs != nil {
		errs = append(errs, s.logs.Close())
		s.logs = nil
	}
	return errors.Join(errs...)
}

func (cfg *Config) complete() error {
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	switch {
	case cfg.DBFile == "":
		return errors.New("temporal server: DBFile is empty")
	case cfg.LogFile == "":
		return errors.New("temporal server: LogFile is empty")
	case cfg.FrontendPort <= 0 || cfg.FrontendPort > 65535:
		return fmt.Errorf("temporal server: frontend port %d is not a TCP port", cfg.FrontendPort)
	case cfg.UIPort < 0 || cfg.UIPort > 65535:
		return fmt.Errorf("temporal server: UI port %d is not a TCP port", cfg.UIPort)
	case cfg.UIPort == cfg.FrontendPort:
		return fmt.Errorf("temporal server: UI and frontend both use port %d", cfg.UIPort)
	case len(cfg.Namespaces) == 0:
		return errors.New("temporal server: no namespace to register")
	}
	return nil
}

// prepareDB creates the schema in a new database file and registers the namespaces.
func prepareDB(cfg Config) (*config.SQL, error) {
	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: cfg.DBFile,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL with synchronous=normal survives a crash of kok (not of the machine) and
			// avoids an fsync per transaction, which a busy laptop notices.
			"journal_mode": "wal",
			"synchronous":  "normal",
		},
	}
	if _, err := os.Stat(cfg.DBFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(cfg.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("create dir of %s: %w", cfg.DBFile, err)
		}
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			// A half-made schema would be taken as complete next time.
			_ = os.Remove(cfg.DBFile)
			return nil, fmt.Errorf("create temporal schema in %s: %w", cfg.DBFile, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("check %s: %w", cfg.DBFile, err)
	}

	namespaces := make([]*sqliteschema.NamespaceConfig, 0, len(cfg.Namespaces))
	for _, name := range cfg.Namespaces {
		ns, err := sqliteschema.NewNamespaceConfig(clusterName, name, false, nil)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", name, err)
		}
		namespaces = append(namespaces, ns)
	}
	if err := sqliteschema.CreateNamespaces(sqlCfg, namespaces...); err != nil {
		return nil, fmt.Errorf("register namespaces in %s: %w", cfg.DBFile, err)
	}
	return sqlCfg, nil
}

func serverOptions(cfg Config, sqlCfg *config.SQL, logs *logFile) ([]temporal.ServerOption, error) {
	frontend := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort))
	// The internal services only talk to each other; any free port will do, and static
	// hosts spare the ring-membership ports a cluster would need.
	ports := map[primitives.ServiceName]int{primitives.FrontendService: cfg.FrontendPort}
	for _, svc := range []primitives.ServiceName{primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		port, err := freePort(cfg.IP)
		if err != nil {
			return nil, err
		}
		ports[svc] = port
	}
	services := map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for svc, port := range ports {
		services[string(svc)] = config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: cfg.IP}}
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(cfg.IP, strconv.Itoa(port)))
	}

	conf := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: cfg.IP},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: frontend},
	}

	logger := log.NewZapLogger(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.InfoLevel),
		zap.ErrorOutput(zapcore.AddSync(io.Discard))))
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	dynamic := dynamicconfig.StaticClient{
		// The Web UI lists workflows on every page and refresh; the default of 10 visibility
		// requests per second throttles a single user clicking around.
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
	}
	return []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamic),
	}, nil
}

func uiConfig(cfg Config) *uiconfig.Config {
	return &uiconfig.Config{
		Host:                cfg.IP,
		Port:                cfg.UIPort,
		TemporalGRPCAddress: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort)),
		EnableUI:            true,
		DefaultNamespace:    cfg.Namespaces[0],
		Codec:               uiconfig.Codec{Endpoint: cfg.CodecEndpoint},
		// Plain http on loopback: a Secure CSRF cookie would never come back.
		CORS:             uiconfig.CORS{CookieInsecure: true},
		HideLogs:         true,
		DisableNewsFetch: true,
	}
}

func (s *Server) waitReady(ctx context.Context) error {
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	var lastErr error
	ready := func() bool {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.Address(), Logger: quiet})
		if err != nil {
			lastErr = err
			return false
		}
		defer c.Close()
		for _, ns := range s.cfg.Namespaces {
			if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns}); err != nil {
				lastErr = fmt.Errorf("describe namespace %s: %w", ns, err)
				return false
			}
		}
		if url := s.UIURL(); url != "" {
			if err := httpOK(ctx, url); err != nil {
				lastErr = fmt.Errorf("web UI: %w", err)
				return false
			}
		}
		return true
	}
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal server not ready (log: %s): %w (last error: %w)", s.cfg.LogFile, ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
	return nil
}

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// logFile drops writes once closed: some server goroutines still log for a moment after
// Stop returns, and those lines are not worth an error on the user's terminal.
type logFile struct {
	mu sync.Mutex
	f  *os.File
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return len(p), nil
	}
	return l.f.Write(p)
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.f
	l.f = nil
	return f.Close()
}

func checkPortsFree(ip string, ports ...int) error {
	for _, port := range ports {
		if port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("port %d on %s is not free: %w", port, ip, err)
		}
		_ = ln.Close()
	}
	return nil
}

func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
