package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServeAndProbe(t *testing.T) {
	for name, dir := range map[string]string{
		"short path": t.TempDir(),
		"long path":  filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60)),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			sock := filepath.Join(dir, "node.sock")
			var broken atomic.Bool
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Serve(ctx, sock, "1.2.3", func() error {
					if broken.Load() {
						return errors.New("disk full")
					}
					return nil
				})
			}()
			require.Eventually(t, func() bool {
				_, err := Probe(context.Background(), sock, "/healthz")
				return err == nil
			}, 10*time.Second, 10*time.Millisecond)
			v, err := Probe(context.Background(), sock, "/version")
			require.NoError(t, err)
			require.Equal(t, "1.2.3", v)
			broken.Store(true)
			_, err = Probe(context.Background(), sock, "/healthz")
			require.ErrorContains(t, err, "503 Service Unavailable: disk full")
			cancel()
			require.NoError(t, <-done)
			_, err = Probe(context.Background(), sock, "/healthz")
			require.Error(t, err)
		})
	}
}
