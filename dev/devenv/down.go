package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultDownTimeout is how long `kok dev down` waits for a clean stop before it kills.
const DefaultDownTimeout = 2 * time.Minute

// Down stops the `kok dev up` that runs on stateDir, as Ctrl-C in its terminal would, and
// waits until it has stopped every part and released the state directory. If it has not
// within timeout it is killed, which takes its children with it (parent-death signals). It
// reports whether a system was running.
func Down(ctx context.Context, stateDir string, timeout time.Duration) (bool, error) {
	holder, err := lockHolder(stateDir)
	switch {
	case err != nil:
		return false, err
	case holder == 0:
		return false, nil
	case holder < 0:
		return true, fmt.Errorf("kok dev up is starting on %s and has not written its pid yet; try again in a second", stateDir)
	}
	if err := syscall.Kill(holder, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("stop kok dev up (pid %d): %w", holder, err)
	}
	if err := waitReleased(ctx, stateDir, timeout); err == nil {
		// It released the state last; what is left is its own exit.
		return true, waitGone(ctx, holder, 10*time.Second)
	} else if ctx.Err() != nil {
		return true, err
	}
	_ = syscall.Kill(holder, syscall.SIGKILL)
	if err := waitReleased(ctx, stateDir, 10*time.Second); err != nil {
		return true, fmt.Errorf("kok dev up (pid %d) did not stop within %s, and not even when killed: %w", holder, timeout, err)
	}
	return true, fmt.Errorf("kok dev up (pid %d) did not stop within %s and was killed; its children died with it", holder, timeout)
}

func waitReleased(ctx context.Context, stateDir string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		holder, err := lockHolder(stateDir)
		if err != nil {
			return err
		}
		if holder == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery / 4)
	defer ticker.Stop()
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("kok dev up (pid %d) released %s but has not exited", pid, lockFile)
		case <-ticker.C:
		}
	}
	return nil
}

// Purge deletes the state directory of a stopped system: every workflow, object, certificate,
// host and log. It refuses a directory that is not a kok state directory, or one in use.
func Purge(stateDir string) error {
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if holder, err := lockHolder(stateDir); err != nil {
		return err
	} else if holder != 0 {
		return fmt.Errorf("kok dev up (pid %d) still runs on %s: stop it first", holder, stateDir)
	}
	marked := false
	for _, f := range []string{lockFile, "codec.key", "temporal.db"} {
		if _, err := os.Stat(filepath.Join(stateDir, f)); err == nil {
			marked = true
		}
	}
	if !marked {
		return fmt.Errorf("%s holds no %s, codec.key or temporal.db: not a kok dev state directory, not deleting it", stateDir, lockFile)
	}
	// Children killed with their parent may still be writing for a moment.
	var err error
	for range 10 {
		if err = os.RemoveAll(stateDir); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("delete %s: %w", stateDir, err)
}
