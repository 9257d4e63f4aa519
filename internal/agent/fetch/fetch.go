package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ChecksumError reports an artifact whose digest differs from the expected one.
type ChecksumError struct {
	URL      string
	Expected string
	Actual   string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("artifact %s has sha256 %s, expected %s", e.URL, e.Actual, e.Expected)
}

// SourceError reports an artifact source that answered without the artifact: an HTTP status
// other than 200 OK, or a file URL that names no file (Code 404 then, as a server would say).
type SourceError struct {
	URL  string
	Code int
	// Status says it in words: "503 Service Unavailable", or "no such file".
	Status string
}

func (e *SourceError) Error() string {
	if strings.HasPrefix(e.URL, "file:") {
		return fmt.Sprintf("open artifact %s: %s", e.URL, e.Status)
	}
	return fmt.Sprintf("download %s: HTTP %s", e.URL, e.Status)
}

// Failure is what a failed Fetch means for the caller.
type Failure int

const (
	// FailureOther is neither transient nor permanent as far as fetch can tell (a full disk, a
	// TLS certificate the host does not trust): retry as any error.
	FailureOther Failure = iota
	// FailureTransient heals by itself: HTTP 5xx, 408, 425 or 429, a refused, reset or dropped
	// connection, a DNS failure, a timeout. Wait and try again.
	FailureTransient
	// FailureMissing: the URL names nothing the host may have (HTTP 401, 403, 404, 410, any other
	// 4xx, a missing file). Retrying the same URL will not help: the spec is wrong.
	FailureMissing
	// FailureChecksum: the artifact was fetched and its digest differs from the expected one.
	FailureChecksum
)

// Classify says what a Fetch error means. It does not look at the caller's context: an error
// because the caller's own deadline passed is the caller's to recognise first.
func Classify(err error) Failure {
	var ce *ChecksumError
	if errors.As(err, &ce) {
		return FailureChecksum
	}
	var se *SourceError
	if errors.As(err, &se) {
		switch {
		case se.Code >= 500, se.Code == http.StatusRequestTimeout, se.Code == http.StatusTooEarly, se.Code == http.StatusTooManyRequests:
			return FailureTransient
		case se.Code >= 400:
			return FailureMissing
		}
		return FailureOther
	}
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns),
		errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EPIPE):
		return FailureTransient
	}
	return FailureOther
}

var digestRE = regexp.MustCompile(`^[a-f0-9]{64}$`)

// ValidDigest reports whether s is a SHA-256 digest written as 64 lowercase hex characters.
func ValidDigest(s string) bool { return digestRE.MatchString(s) }

// Fetcher downloads artifacts into Dir, named by their digest.
type Fetcher struct {
	// Dir is the cache directory; downloads land in it under a temporary name first.
	Dir string
	// Client fetches http(s) URLs; nil means a client with a 30-second connect/header timeout.
	Client *http.Client
	// Progress, when set, is called as bytes arrive (at most once per ProgressEvery bytes and
	// at the end): long downloads use it to heartbeat.
	Progress func(done, total int64)
}

// ProgressEvery is how many bytes pass between two Progress calls.
const ProgressEvery = 4 << 20

var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
	},
}

// Fetch returns the path of a cached file whose SHA-256 is digest, downloading rawURL (http,
// https or file) when the cache does not already hold it. A download that does not match
// returns a *ChecksumError and leaves nothing behind.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, digest string) (string, error) {
	if !ValidDigest(digest) {
		return "", fmt.Errorf("sha256 %q is not 64 lowercase hex characters", digest)
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create artifact cache: %w", err)
	}
	final := filepath.Join(f.Dir, digest)
	// A cached file is hashed again: the cache is on the host's disk, and whatever touched
	// the disk may have touched it.
	if sum, err := SHA256File(final); err == nil && sum == digest {
		return final, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read cached artifact: %w", err)
	}

	src, size, err := f.open(ctx, rawURL)
	if err != nil {
		return "", err
	}
	defer src.Close()

	tmp, err := os.CreateTemp(f.Dir, ".download-*")
	if err != nil {
		return "", fmt.Errorf("create download file: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename on success
	defer tmp.Close()

	h := sha256.New()
	var done int64
	buf := make([]byte, 256<<10)
	next := int64(ProgressEvery)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := tmp.Write(buf[:n]); err != nil {
				return "", fmt.Errorf("write download of %s: %w", rawURL, err)
			}
			h.Write(buf[:n])
			done += int64(n)
			if f.Progress != nil && done >= next {
				f.Progress(done, size)
				next = done + ProgressEvery
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", fmt.Errorf("download %s: %w", rawURL, rerr)
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("download %s: %w", rawURL, err)
		}
	}
	if f.Progress != nil {
		f.Progress(done, size)
	}
	if actual := hex.EncodeToString(h.Sum(nil)); actual != digest {
		return "", &ChecksumError{URL: rawURL, Expected: digest, Actual: actual}
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("sync download of %s: %w", rawURL, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("store artifact in cache: %w", err)
	}
	return final, nil
}

// Forget removes the cached file for digest, if any.
func (f *Fetcher) Forget(digest string) error {
	if !ValidDigest(digest) {
		return nil
	}
	if err := os.Remove(filepath.Join(f.Dir, digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// open returns a reader of the artifact and its size (-1 when unknown).
func (f *Fetcher) open(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, 0, fmt.Errorf("artifact URL %q: a file URL must not name a host", rawURL)
		}
		file, err := os.Open(u.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, &SourceError{URL: rawURL, Code: http.StatusNotFound, Status: "no such file"}
		}
		if err != nil {
			return nil, 0, fmt.Errorf("open artifact %s: %w", rawURL, err)
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, 0, err
		}
		return file, fi.Size(), nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("artifact URL %q: %w", rawURL, err)
		}
		client := f.Client
		if client == nil {
			client = defaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("download %s: %w", rawURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, &SourceError{URL: rawURL, Code: resp.StatusCode, Status: resp.Status}
		}
		return resp.Body, resp.ContentLength, nil
	default:
		return nil, 0, fmt.Errorf("artifact URL %q: scheme must be http, https or file", rawURL)
	}
}

// SHA256File is the lowercase hex SHA-256 digest of a file, as artifacts are checksummed.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
