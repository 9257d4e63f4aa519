package app

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"kok.dev/activities/host"
)

func TestLocalCheckIntervalFlag(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		var o Options
		fs := pflag.NewFlagSet("kok-agent", pflag.ContinueOnError)
		o.AddFlags(fs)
		require.NoError(t, fs.Parse(append([]string{"--host", "w1", "--simulate", "--root", t.TempDir()}, args...)))
		return o, o.Validate()
	}
	o, err := parse()
	require.NoError(t, err)
	require.Equal(t, host.DefaultLocalCheckInterval, o.LocalCheckInterval)
	require.Equal(t, 90*time.Second, o.LocalCheckInterval)

	o, err = parse("--local-check-interval", "0")
	require.NoError(t, err, "0 turns the loop off")
	require.Zero(t, o.LocalCheckInterval)

	for _, bad := range []string{"-1s", "10ms"} {
		_, err = parse("--local-check-interval", bad)
		require.ErrorContains(t, err, "--local-check-interval "+bad+": must be 0 (off) or at least 1s")
	}
}
