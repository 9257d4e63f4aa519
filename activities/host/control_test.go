package host

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"kok.dev/contract/hostapi"
)

func TestControlService(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root, slowRestarts) // the supervisor must not restart what the test stops
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)
	control := func(action hostapi.ServiceAction) (hostapi.ControlServiceResult, error) {
		t.Helper()
		val, err := h.env.ExecuteActivity(h.a.ControlService, hostapi.ControlServiceParams{Package: "demo", Action: action})
		if err != nil {
			return hostapi.ControlServiceResult{}, err
		}
		var res hostapi.ControlServiceResult
		require.NoError(t, val.Get(&res))
		return res, nil
	}

	first := h.sup.Status("demo").PID
	res, err := control(hostapi.ServiceStart)
	require.NoError(t, err)
	require.Equal(t, hostapi.ControlServiceResult{Running: true}, res, "starting a running service changes nothing")

	res, err = control(hostapi.ServiceRestart)
	require.NoError(t, err)
	require.Equal(t, hostapi.ControlServiceResult{Changed: true, Running: true}, res)
	require.NotEqual(t, first, h.sup.Status("demo").PID, "a restart is a new process")

	res, err = control(hostapi.ServiceStop)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.False(t, h.sup.Status("demo").Running)
	res, err = control(hostapi.ServiceStop)
	require.NoError(t, err)
	require.False(t, res.Changed, "stopping a stopped service changes nothing")

	res, err = control(hostapi.ServiceStart)
	require.NoError(t, err)
	require.Equal(t, hostapi.ControlServiceResult{Changed: true, Running: true}, res)
	require.True(t, h.sup.Status("demo").Running)
	require.Len(t, h.journal("service-Restart"), 1)
	require.Len(t, h.journal("service-stopped"), 1)

	for _, tc := range []struct {
		pkg, action, want, errType string
	}{
		{"absent", "Start", "package absent is not installed on host w1", hostapi.ErrTypeNotInstalled},
		{"demo", "Pause", `unknown service action "Pause": want Start, Stop or Restart`, hostapi.ErrTypeBadSpec},
	} {
		_, err := h.env.ExecuteActivity(h.a.ControlService, hostapi.ControlServiceParams{Package: tc.pkg, Action: hostapi.ServiceAction(tc.action)})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, tc.errType, appErr.Type())
		require.Contains(t, appErr.Error(), tc.want)
		require.True(t, appErr.NonRetryable())
	}
}
