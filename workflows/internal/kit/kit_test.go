package kit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJitterStaysWithinTenPercentAndSpreads(t *testing.T) {
	base := 15 * time.Minute
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		d := Jitter(base, "Machine/c/node-"+string(rune('a'+i%26))+string(rune('a'+i/26)), 0)
		require.GreaterOrEqual(t, d, base*9/10)
		require.Less(t, d, base*11/10)
		seen[d] = true
	}
	require.Greater(t, len(seen), 150, "different keys must fall apart")
	require.Equal(t, Jitter(base, "k", 3), Jitter(base, "k", 3), "deterministic for replay")
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{0, 9 * time.Second, 11 * time.Second},
		{1, 18 * time.Second, 22 * time.Second},
		{3, 72 * time.Second, 88 * time.Second},
		{10, 270 * time.Second, 330 * time.Second}, // capped at 5 min
	} {
		d := Backoff(10*time.Second, 5*time.Minute, "k", tc.n)
		require.GreaterOrEqual(t, d, tc.min, "attempt %d", tc.n)
		require.Less(t, d, tc.max, "attempt %d", tc.n)
	}
}
