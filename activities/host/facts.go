package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"kok.dev/contract/hostapi"

	"golang.org/x/sys/unix"

	"kok.dev/internal/agent/installer"
)

// Activities run on one host. Root is the host's root directory: "/" on a real host, a private
// directory for a simulated one, so several simulated hosts share one machine without touching it.
//
// Every exported method is an activity (the worker registers the struct), so helpers that are not
// activities are unexported methods or package functions.
type Activities struct {
	Host string
	// Address is the IP address the host's services are reached at (and bind to), as the
	// agent's --address says: masters advertise it to their peers.
	Address  string
	Root     string
	Simulate bool
	// Services runs the packages' services; required by every activity that starts, stops or
	// checks one (kok-agent passes its supervisor).
	Services ServiceManager
	// Runner runs package managers and system commands; nil runs them for real.
	Runner installer.Runner
	// SettleTime is how long a freshly started service must keep running to count as started:
	// one that exits sooner failed to start, and an upgrade to it is rolled back. Default 1s.
	SettleTime time.Duration
	// Logger receives the agent's own log lines; nil discards them.
	Logger *slog.Logger

	initOnce sync.Once
	// busy admits one change to the host at a time, as package managers do with their locks.
	busy chan struct{}
	// mu guards acked.
	mu sync.Mutex
	// acked holds, per service, the supervisor restarts already reported as repairs.
	acked map[string]int
	// health holds the local loop's last health verdicts of unhealthy packages, by name.
	health map[string]hostapi.PackageHealth
}

// Facts reports what the host is. A simulated host may carry its own etc/os-release under Root;
// otherwise the machine's own is reported.
func (a *Activities) Facts(ctx context.Context) (hostapi.FactsResult, error) {
	res := hostapi.FactsResult{Host: a.Host, Address: a.Address, Arch: runtime.GOARCH, Simulated: a.Simulate}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return res, fmt.Errorf("uname: %w", err)
	}
	res.Kernel = unix.ByteSliceToString(uts.Release[:])

	for _, p := range []string{filepath.Join(a.Root, "etc/os-release"), "/etc/os-release", "/usr/lib/os-release"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		kv := ParseOSRelease(data)
		res.OS, res.OSID = kv["PRETTY_NAME"], kv["ID"]
		break
	}

	st, err := a.loadState()
	if err != nil {
		return res, err
	}
	res.BootID = a.bootID(st)
	res.Installed = a.installed(st)
	return res, nil
}

// bootID is the kernel's boot id, or a simulated host's boot count.
func (a *Activities) bootID(st *hostState) string {
	if a.Simulate {
		return fmt.Sprintf("simulated-boot-%d", st.BootCount)
	}
	if id, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		return strings.TrimSpace(string(id))
	}
	return ""
}

// installed lists the recorded packages, sorted by name, with their services' state now.
func (a *Activities) installed(st *hostState) []hostapi.InstalledPackage {
	var out []hostapi.InstalledPackage
	for _, name := range st.names() {
		spec := st.Packages[name].Spec
		ip := hostapi.InstalledPackage{Name: spec.Name, Version: spec.Version, DependsOn: spec.DependsOn, ServiceRunning: true}
		if spec.Service != nil && a.Services != nil {
			ip.ServiceRunning = a.Services.Status(spec.Service.Name).Running
		}
		out = append(out, ip)
	}
	return out
}

// ParseOSRelease reads os-release(5) content: KEY=value lines, values optionally quoted.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}
