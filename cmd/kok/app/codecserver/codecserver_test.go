package codecserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"kok.dev/cmd/kok/app/codecserver"
	"kok.dev/internal/codec"
	"kok.dev/internal/tclient"
)

// syncBuffer lets the test read what the command prints while the command still runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func execute(cmd *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func newKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "codec-keys.json")
	require.NoError(t, codec.GenerateKeyFile(path))
	return path
}

var listeningLine = regexp.MustCompile(`codec server listening on (http://\S+)`)

func TestCodecServerServesAndStops(t *testing.T) {
	keyFile := newKeyFile(t)
	const origin = "http://ui.test:8233"

	cmd := codecserver.NewCommand()
	out := &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"--key-file", keyFile, "--listen", "127.0.0.1:0", "--allow-origin", origin + "/"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	var base string
	require.Eventually(t, func() bool {
		m := listeningLine.FindStringSubmatch(out.String())
		if m == nil {
			return false
		}
		base = m[1]
		return true
	}, 10*time.Second, 10*time.Millisecond, "no listening line; output: %s", out.String())

	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())

	// What the server encodes, the same key file decodes in process, and vice versa.
	plain, err := converter.GetDefaultDataConverter().ToPayload("kubeconfig")
	require.NoError(t, err)
	encoded := roundTrip(t, base+"/encode", origin, plain)
	require.Equal(t, codec.EncodingEncrypted, string(encoded.Metadata[converter.MetadataEncoding]))
	keys, err := codec.LoadKeyring(keyFile)
	require.NoError(t, err)
	local, err := codec.NewCodec(keys).Decode([]*commonpb.Payload{encoded})
	require.NoError(t, err)
	require.Equal(t, plain.Data, local[0].Data)
	decoded := roundTrip(t, base+"/decode", origin, encoded)
	require.Equal(t, plain.Data, decoded.Data)

	req, err := http.NewRequest(http.MethodOptions, base+"/decode", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("codec server did not stop after its context was cancelled")
	}
	require.Contains(t, out.String(), "codec server stopped")
}

func roundTrip(t *testing.T, url, origin string, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	body, err := json.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(respBody))
	var out commonpb.Payloads
	require.NoError(t, json.Unmarshal(respBody, &out))
	require.Len(t, out.Payloads, 1)
	return out.Payloads[0]
}

func TestCodecServerRefusesBadFlags(t *testing.T) {
	t.Setenv(tclient.EnvCodecKeyFile, "")
	keyFile := newKeyFile(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no key file":      {[]string{"--listen", "127.0.0.1:0"}, "--key-file is required"},
		"missing key file": {[]string{"--key-file", filepath.Join(t.TempDir(), "nope.json")}, "nope.json"},
		"origin with path": {[]string{"--key-file", keyFile, "--allow-origin", "http://127.0.0.1:8233/ui"}, `--allow-origin "http://127.0.0.1:8233/ui" is not an origin`},
		"origin no scheme": {[]string{"--key-file", keyFile, "--allow-origin", "127.0.0.1:8233"}, `--allow-origin "127.0.0.1:8233"`},
		"bad listen":       {[]string{"--key-file", keyFile, "--listen", "127.0.0.1"}, "--listen 127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := execute(codecserver.NewCommand(), tc.args...)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCodecServerHelpSaysHowToUseIt(t *testing.T) {
	out, err := execute(codecserver.NewCommand(), "--help")
	require.NoError(t, err)
	for _, want := range []string{"codec:", "endpoint: http://127.0.0.1:8234", "--codec-endpoint", "--allow-origin", "--key-file"} {
		require.Contains(t, out, want)
	}
}

func TestCodecKeyGenerateAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codec-keys.json")

	out, err := execute(codecserver.NewKeyCommand(), "generate", "--file", path)
	require.NoError(t, err)
	first, err := codec.LoadKeyring(path)
	require.NoError(t, err)
	require.Contains(t, out, first.ActiveKeyID())

	_, err = execute(codecserver.NewKeyCommand(), "generate", "--file", path)
	require.ErrorContains(t, err, "already exists")

	out, err = execute(codecserver.NewKeyCommand(), "rotate", "--file", path)
	require.NoError(t, err)
	second, err := codec.LoadKeyring(path)
	require.NoError(t, err)
	require.NotEqual(t, first.ActiveKeyID(), second.ActiveKeyID())
	require.Contains(t, out, "added key "+second.ActiveKeyID())
	require.Contains(t, out, "holds 2 keys")

	t.Setenv(tclient.EnvCodecKeyFile, "")
	_, err = execute(codecserver.NewKeyCommand(), "rotate")
	require.ErrorContains(t, err, "--file is required")
	_, err = execute(codecserver.NewKeyCommand(), "rotate", "--file", filepath.Join(t.TempDir(), "none.json"))
	require.ErrorContains(t, err, "none.json")
}
