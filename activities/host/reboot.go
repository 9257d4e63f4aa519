package host

import (
	"context"
	"errors"
	"fmt"
)

// Reboot restarts the host. A simulated host stops every service, counts a boot and starts them
// again; a real host asks systemd to reboot, and the activity usually ends with the agent
// (workflows compare FactsResult.BootID before and after to know it happened).
func (a *Activities) Reboot(ctx context.Context) error {
	if !a.Simulate {
		a.journal("", "", "reboot", "systemctl reboot")
		if _, err := a.runner().Run(ctx, nil, "systemctl", "reboot"); err != nil {
			return fmt.Errorf("reboot host %s: %w", a.Host, err)
		}
		return nil
	}
	ctx, stop := keepAlive(ctx)
	defer stop()
	unlock, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := a.loadState()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range st.names() {
		errs = append(errs, a.stopService(st.Packages[name].Spec))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reboot host %s: stop services: %w", a.Host, err)
	}
	st.BootCount++
	if err := a.saveState(st); err != nil {
		return err
	}
	a.journal("", "", "reboot", fmt.Sprintf("boot %d", st.BootCount))
	if err := a.startAll(ctx, st); err != nil {
		return fmt.Errorf("reboot host %s: %w", a.Host, err)
	}
	return nil
}
