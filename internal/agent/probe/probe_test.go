package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExec(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, Check(ctx, Spec{Exec: []string{"/bin/true"}}))
	err := Check(ctx, Spec{Exec: []string{"/bin/sh", "-c", "echo not ready >&2; exit 2"}})
	require.ErrorContains(t, err, "exit status 2")
	require.ErrorContains(t, err, "not ready")
	err = Check(ctx, Spec{Exec: []string{"/bin/sleep", "10"}, Timeout: 100 * time.Millisecond})
	require.ErrorContains(t, err, "did not finish within 100ms")
	require.NoError(t, Check(ctx, Spec{Exec: []string{"/bin/sh", "-c", `test "$X" = y`}, Env: []string{"X=y"}}))
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte("ok"))
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		default:
			http.Error(w, "broken disk", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	require.NoError(t, Check(ctx, Spec{HTTPURL: srv.URL + "/healthz"}))
	require.NoError(t, Check(ctx, Spec{HTTPURL: srv.URL + "/teapot", ExpectStatus: 418}))
	err := Check(ctx, Spec{HTTPURL: srv.URL + "/x"})
	require.ErrorContains(t, err, "answered 500, want 200: broken disk")

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer tlsSrv.Close()
	require.ErrorContains(t, Check(ctx, Spec{HTTPURL: tlsSrv.URL}), "certificate")
	require.NoError(t, Check(ctx, Spec{HTTPURL: tlsSrv.URL, InsecureSkipVerify: true}))
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, Check(context.Background(), Spec{TCPAddress: addr}))
	require.NoError(t, l.Close())
	require.ErrorContains(t, Check(context.Background(), Spec{TCPAddress: addr}), "connect to "+addr)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{}, "exactly one of exec, http or tcp"},
		{Spec{Exec: []string{"x"}, TCPAddress: "a:1"}, "exactly one"},
		{Spec{HTTPURL: "ftp://x"}, "must be http or https"},
		{Spec{TCPAddress: "nohost"}, "missing port"},
		{Spec{HTTPURL: "http://x", ExpectStatus: 42}, "not an HTTP status"},
	} {
		require.ErrorContains(t, tc.spec.Validate(), tc.want)
	}
}
