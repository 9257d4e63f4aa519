package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"kok.dev/dev/simnode/health"
)

// Roles are the components kok-sim-node can play.
var Roles = []string{"container-runtime", "log-collector", "node-problem-detector"}

// Options configure one daemon.
type Options struct {
	Role    string
	Version string
	// Root is the host root (${KOK_ROOT}); Socket the health socket.
	Root   string
	Socket string
	// Config, when set, must be a readable file: a daemon whose config is missing does not
	// start, as a real one would not.
	Config string
	// Interval is how often the role's work runs. Default 10s.
	Interval time.Duration
	// Fail makes the daemon exit at once, to simulate a release that does not start.
	Fail   bool
	Logger *slog.Logger
}

// Run plays the role until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Fail {
		return fmt.Errorf("%s %s: simulated start failure (--fail)", o.Role, o.Version)
	}
	work, ok := map[string]func(Options) error{
		"container-runtime":     runtimeWork,
		"log-collector":         collectLogs,
		"node-problem-detector": detectProblems,
	}[o.Role]
	if !ok {
		return fmt.Errorf("unknown role %q: one of %s", o.Role, strings.Join(Roles, ", "))
	}
	if o.Socket == "" {
		return errors.New("--socket is required")
	}
	if o.Config != "" {
		cfg, err := os.ReadFile(o.Config)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		o.Logger.Info("config loaded", "path", o.Config, "bytes", len(cfg))
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	var lastErr atomic.Pointer[error]
	lastErr.Store(new(error))
	status := func() error { return *lastErr.Load() }
	served := make(chan error, 1)
	go func() { served <- health.Serve(ctx, o.Socket, o.Version, status) }()
	o.Logger.Info("started", "role", o.Role, "version", o.Version, "socket", o.Socket)

	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		err := work(o)
		lastErr.Store(&err)
		if err != nil {
			o.Logger.Warn("work failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return <-served
		case err := <-served:
			return fmt.Errorf("health endpoint stopped: %w", err)
		case <-tick.C:
		}
	}
}

// runtimeWork keeps the runtime's state directory, as a container runtime's would be.
func runtimeWork(o Options) error {
	return os.MkdirAll(filepath.Join(o.Root, "var/lib/kok-sim/containers"), 0o755)
}

// collectLogs copies the size of every service log into an index, a collector's bookkeeping.
func collectLogs(o Options) error {
	dir := filepath.Join(o.Root, "var/log/kok")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var lines []string
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			lines = append(lines, fmt.Sprintf("%s %d", e.Name(), fi.Size()))
		}
	}
	sort.Strings(lines)
	return writeFile(filepath.Join(o.Root, "var/lib/kok-sim/log-collector/index"), strings.Join(lines, "\n")+"\n")
}

// detectProblems reports the node's problems: none, unless a file under the root says so
// (tests and demos create <root>/var/lib/kok-sim/problems to inject one).
func detectProblems(o Options) error {
	data, err := os.ReadFile(filepath.Join(o.Root, "var/lib/kok-sim/problems"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if p := strings.TrimSpace(string(data)); p != "" {
		return fmt.Errorf("node problem: %s", p)
	}
	return nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
