package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// Spec is one check: exactly one of Exec, HTTPURL and TCPAddress is set.
type Spec struct {
	Exec []string
	// Env is the environment of an Exec check.
	Env                []string
	HTTPURL            string
	ExpectStatus       int // default 200
	InsecureSkipVerify bool
	TCPAddress         string
	// Timeout bounds the check. Default 5s.
	Timeout time.Duration
}

// Validate says what is wrong with s, if anything.
func (s Spec) Validate() error {
	n := 0
	if len(s.Exec) > 0 {
		n++
	}
	if s.HTTPURL != "" {
		n++
		if !strings.HasPrefix(s.HTTPURL, "http://") && !strings.HasPrefix(s.HTTPURL, "https://") {
			return fmt.Errorf("health check URL %q must be http or https", s.HTTPURL)
		}
	}
	if s.TCPAddress != "" {
		n++
		if _, _, err := net.SplitHostPort(s.TCPAddress); err != nil {
			return fmt.Errorf("health check TCP address %q: %w", s.TCPAddress, err)
		}
	}
	if n != 1 {
		return errors.New("health check must set exactly one of exec, http or tcp")
	}
	if s.ExpectStatus != 0 && (s.ExpectStatus < 100 || s.ExpectStatus > 599) {
		return fmt.Errorf("health check expected status %d is not an HTTP status", s.ExpectStatus)
	}
	return nil
}

// Check runs the check once; nil means healthy.
func Check(ctx context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case len(s.Exec) > 0:
		return checkExec(ctx, s, timeout)
	case s.HTTPURL != "":
		return checkHTTP(ctx, s, timeout)
	default:
		return checkTCP(ctx, s, timeout)
	}
}

func checkExec(ctx context.Context, s Spec, timeout time.Duration) error {
	cmd := exec.CommandContext(ctx, s.Exec[0], s.Exec[1:]...)
	cmd.Env = s.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a grandchild holding the output open must not hang the check
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := strings.Join(s.Exec, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("command %q did not finish within %s", what, timeout)
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 512 {
		msg = "..." + msg[len(msg)-512:]
	}
	if msg != "" {
		return fmt.Errorf("command %q failed (%w): %s", what, err, msg)
	}
	return fmt.Errorf("command %q failed (%w)", what, err)
}

func checkHTTP(ctx context.Context, s Spec, timeout time.Duration) error {
	want := s.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if s.InsecureSkipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the spec asks for it
	}
	client := &http.Client{
		Transport: tr,
		// A redirect is an answer: compare its status rather than following it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL, nil)
	if err != nil {
		return fmt.Errorf("health check URL %q: %w", s.HTTPURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: no answer within %s", s.HTTPURL, timeout)
		}
		return fmt.Errorf("GET %s: %w", s.HTTPURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s answered %d, want %d: %s", s.HTTPURL, resp.StatusCode, want, strings.TrimSpace(string(body)))
	}
	return nil
}

func checkTCP(ctx context.Context, s Spec, timeout time.Duration) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.TCPAddress)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("connect to %s: no answer within %s", s.TCPAddress, timeout)
		}
		return fmt.Errorf("connect to %s: %w", s.TCPAddress, err)
	}
	return conn.Close()
}
