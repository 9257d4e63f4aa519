package installer

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Package names one version of one package and the digest of its artifact.
type Package struct {
	Name    string
	Version string
	SHA256  string
}

func (p Package) String() string { return p.Name + " " + p.Version }

// Installer installs, checks and removes package versions on one host.
type Installer interface {
	// Installed reports whether p is the installed version of its package and is intact.
	Installed(ctx context.Context, p Package) (bool, error)
	// Staged reports whether p can be installed without its artifact (the local installer keeps
	// unpacked versions for quick rollback); callers fetch the artifact only when it cannot.
	Staged(p Package) bool
	// Install makes p the installed version from the verified artifact at path (empty when
	// Staged). It does nothing when p is already installed. progress is called during long steps.
	Install(ctx context.Context, p Package, artifact string, progress func(detail string)) error
	// Remove takes every version of the named package off the host; removing an absent package
	// succeeds.
	Remove(ctx context.Context, name string) error
	// PackageDir is the directory holding p's files, for ${KOK_PACKAGE_DIR}; "" when the package
	// system spreads them over the file system.
	PackageDir(p Package) string
}

// Runner runs a command and returns its combined output. Tests replace it to see command lines.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands for real.
type ExecRunner struct{}

// Run runs name with args; env entries are added to the agent's environment. A failure carries
// the end of the output, which is where package managers say why.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := strings.TrimSpace(string(out))
		if len(text) > 2048 {
			text = "..." + text[len(text)-2048:]
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, text)
	}
	return out, nil
}
