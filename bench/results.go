package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is one benchmark's figures, written as bench/results/<Name>.json.
type Result struct {
	Name    string             `json:"name"`
	When    time.Time          `json:"when"`
	Machine string             `json:"machine"`
	Figures map[string]float64 `json:"figures"`
	Units   map[string]string  `json:"units"`
	Notes   string             `json:"notes,omitempty"`
}

// Write stores r under $KOK_BENCH_RESULTS (set by `make bench`); without it the figures are
// only logged, so a plain `go test -bench` never dirties the tree.
func Write(r Result) (string, error) {
	dir := os.Getenv("KOK_BENCH_RESULTS")
	if dir == "" {
		return "", nil
	}
	r.When = time.Now().UTC().Truncate(time.Second)
	r.Machine = fmt.Sprintf("%s/%s, %d cores", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Name+".json")
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// Summary is the min, median and max of a sample, in seconds.
func Summary(d []time.Duration) (minimum, median, maximum float64) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[0].Seconds(), s[len(s)/2].Seconds(), s[len(s)-1].Seconds()
}

// RSSBytes reads a process's resident set size from /proc.
func RSSBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
