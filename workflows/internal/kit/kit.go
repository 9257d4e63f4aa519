package kit

import (
	"errors"
	"hash/fnv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Drain consumes every signal pending on c and says whether there was any. Payloads are
// discarded; use DrainInto to keep them.
func Drain(c workflow.ReceiveChannel) bool {
	got := false
	for c.ReceiveAsync(nil) {
		got = true
	}
	return got
}

// DrainInto consumes every signal pending on c, handing each payload to f, and says whether
// there was any.
func DrainInto[T any](c workflow.ReceiveChannel, f func(T)) bool {
	got := false
	for {
		var v T
		if !c.ReceiveAsync(&v) {
			return got
		}
		got = true
		f(v)
	}
}

// Jitter spreads a periodic interval over [0.9, 1.1) of base, by a hash of key and n (for
// example the workflow ID and the pass number). It is deterministic, so replay gets the same
// value, and different keys fall apart: a fleet started or woken together does not stay
// phase-locked into one burst per interval.
func Jitter(base time.Duration, key string, n int) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
	frac := float64(h.Sum64()%10_000) / 10_000 // [0, 1)
	return time.Duration(float64(base) * (0.9 + 0.2*frac))
}

// Backoff is the wait before attempt n (0-based) of something that waits outside the spec (an
// agent to come back, a Node to register): base doubled per attempt, capped at max, jittered by
// key so waiters do not retry in step.
func Backoff(base, max time.Duration, key string, n int) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return Jitter(d, key, n)
}

// RootCause names an activity's failure in words: the application error's message, or which
// timeout fired.
func RootCause(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timed out (" + to.TimeoutType().String() + ")"
	}
	return err.Error()
}

// IsTimeout says whether err is an activity that timed out, which from a host's queue means the
// agent was away (ScheduleToStart) or went away (Heartbeat, StartToClose): absent, not failed.
func IsTimeout(err error) bool {
	var to *temporal.TimeoutError
	return errors.As(err, &to)
}

// ErrorType is the application error type of err, or "".
func ErrorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}
