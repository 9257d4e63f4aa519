package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// KubeVersion is the Kubernetes release whose binaries back the test API server.
const KubeVersion = "v1.37.2"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot is the directory holding kok's go.mod, found by walking up from the working
// directory (go test runs each package in its own folder).
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isKokModule(data) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no kok go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

func isKokModule(gomod []byte) bool {
	const want = "module kok.dev\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

// K8sBinDir is where etcd, kube-apiserver and kubectl for the tests live: $KOK_K8S_BINS when set
// (the Makefile exports it), else bin/k8s/<KubeVersion> under the repository root.
func K8sBinDir() (string, error) {
	if dir := os.Getenv("KOK_K8S_BINS"); dir != "" {
		return dir, checkK8sBins(dir)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bin", "k8s", KubeVersion)
	return dir, checkK8sBins(dir)
}

func checkK8sBins(dir string) error {
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is missing from %s: run `make k8s-bins` (builds Kubernetes %s from source, about 10 minutes the first time)", name, dir, KubeVersion)
		}
	}
	return nil
}

// K8sBinDirFor is where the binaries of another Kubernetes release live (bin/k8s/<version>,
// beside K8sBinDir), for the cluster catalogue's second release.
func K8sBinDirFor(version string) (string, error) {
	dir, err := K8sBinDir()
	if err != nil {
		return "", err
	}
	dir = filepath.Join(filepath.Dir(dir), version)
	if err := checkK8sBins(dir); err != nil {
		return "", fmt.Errorf("%w (for %s: `make k8s-bins` builds every version in KUBE_VERSIONS)", err, version)
	}
	return dir, nil
}
