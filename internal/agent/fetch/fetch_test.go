package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFetchFileURL(t *testing.T) {
	src := filepath.Join(t.TempDir(), "a.tar.gz")
	content := []byte("artifact content")
	require.NoError(t, os.WriteFile(src, content, 0o644))
	f := &Fetcher{Dir: filepath.Join(t.TempDir(), "cache")}

	path, err := f.Fetch(context.Background(), "file://"+src, digestOf(content))
	require.NoError(t, err)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, content, got)

	// Cached: the source may go away.
	require.NoError(t, os.Remove(src))
	again, err := f.Fetch(context.Background(), "file://"+src, digestOf(content))
	require.NoError(t, err)
	require.Equal(t, path, again)

	require.NoError(t, f.Forget(digestOf(content)))
	_, err = f.Fetch(context.Background(), "file://"+src, digestOf(content))
	require.ErrorContains(t, err, "open artifact")
}

func TestFetchHTTPAndMismatch(t *testing.T) {
	content := []byte("served artifact")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(content)
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cache")
	var progress []int64
	f := &Fetcher{Dir: dir, Progress: func(done, _ int64) { progress = append(progress, done) }}

	_, err := f.Fetch(context.Background(), srv.URL+"/ok", digestOf(content))
	require.NoError(t, err)
	require.Equal(t, []int64{int64(len(content))}, progress)

	wrong := digestOf([]byte("something else"))
	_, err = f.Fetch(context.Background(), srv.URL+"/ok", wrong)
	var ce *ChecksumError
	require.True(t, errors.As(err, &ce), "got %v", err)
	require.Equal(t, wrong, ce.Expected)
	require.Equal(t, digestOf(content), ce.Actual)
	_, statErr := os.Stat(filepath.Join(dir, wrong))
	require.True(t, os.IsNotExist(statErr), "a mismatching download is not cached")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the good artifact, no temporary leftovers")

	_, err = f.Fetch(context.Background(), srv.URL+"/missing", wrong)
	require.ErrorContains(t, err, "404")
}

func TestFetchRefusesBadInput(t *testing.T) {
	f := &Fetcher{Dir: t.TempDir()}
	_, err := f.Fetch(context.Background(), "file:///x", "ABC")
	require.ErrorContains(t, err, "64 lowercase hex")
	_, err = f.Fetch(context.Background(), "ftp://x/y", digestOf(nil))
	require.ErrorContains(t, err, "scheme must be http, https or file")
}

func TestFetchReplacesCorruptCacheEntry(t *testing.T) {
	content := []byte("good")
	src := filepath.Join(t.TempDir(), "a")
	require.NoError(t, os.WriteFile(src, content, 0o644))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, digestOf(content)), []byte("bit rot"), 0o644))
	path, err := (&Fetcher{Dir: dir}).Fetch(context.Background(), "file://"+src, digestOf(content))
	require.NoError(t, err)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, content, got)
}

func TestClassify(t *testing.T) {
	content := []byte("served artifact")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			_, _ = w.Write(content)
			return
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	// A port nothing listens on: take one and give it back.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + l.Addr().String() + "/a"
	require.NoError(t, l.Close())

	f := &Fetcher{Dir: t.TempDir()}
	for _, tc := range []struct {
		url    string
		digest string
		want   Failure
		msg    string
	}{
		{srv.URL + "/503", digestOf(content), FailureTransient, "HTTP 503 Service Unavailable"},
		{srv.URL + "/502", digestOf(content), FailureTransient, "HTTP 502 Bad Gateway"},
		{srv.URL + "/429", digestOf(content), FailureTransient, "HTTP 429 Too Many Requests"},
		{srv.URL + "/408", digestOf(content), FailureTransient, "HTTP 408"},
		{refused, digestOf(content), FailureTransient, "connection refused"},
		{srv.URL + "/404", digestOf(content), FailureMissing, "HTTP 404 Not Found"},
		{srv.URL + "/403", digestOf(content), FailureMissing, "HTTP 403 Forbidden"},
		{"file://" + filepath.Join(t.TempDir(), "absent"), digestOf(content), FailureMissing, "no such file"},
		{srv.URL + "/ok", digestOf([]byte("other")), FailureChecksum, "has sha256"},
		{srv.URL + "/204", digestOf(content), FailureOther, "HTTP 204 No Content"},
	} {
		_, err := f.Fetch(context.Background(), tc.url, tc.digest)
		require.Error(t, err, tc.url)
		require.Equal(t, tc.want, Classify(err), "%s: %v", tc.url, err)
		require.ErrorContains(t, err, tc.msg)
		require.ErrorContains(t, err, tc.url, "the error names the URL")
	}
	require.Equal(t, FailureTransient, Classify(fmt.Errorf("x: %w", &net.DNSError{Err: "no such host", Name: "artifacts.example", IsNotFound: true})))
	require.Equal(t, FailureOther, Classify(errors.New("disk full")))
}
