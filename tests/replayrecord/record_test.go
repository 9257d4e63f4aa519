package replayrecord

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"kok.dev/contract/queue"
	"kok.dev/workers/control"
)

// recordEnv turns the recorder on; without it every test here is skipped, so `make test` never
// rewrites committed histories.
const recordEnv = "KOK_RECORD_HISTORIES"

// suffixEnv is added to every file name recorded (before .json.gz), so that the histories of a
// new workflow version sit beside the old version's, which stay while runs of it may exist.
const suffixEnv = "KOK_RECORD_SUFFIX"

// overwriteEnv=1 lets the recorder replace a committed history. Only for a history of the version
// being written now, never for an older one: runs of that version replay it.
const overwriteEnv = "KOK_RECORD_OVERWRITE"

// waitLimit bounds every wait for a path to reach its point of interest. The longest path waits
// for a ScheduleToStart timeout of one minute.
const waitLimit = 3 * time.Minute

func skipUnlessRecording(t *testing.T) {
	t.Helper()
	if os.Getenv(recordEnv) != "1" {
		t.Skipf("set %s=1 to record the replay histories", recordEnv)
	}
}

// server is an in-process Temporal server with one worker on the control queue that registers
// every workflow exactly as kok-manager does.
type server struct {
	srv *temporaltest.TestServer
	c   client.Client
}

// newServer starts a server; historyCountSuggestCAN > 0 lowers the event count at which the
// server suggests continue-as-new, so that a short run takes that path.
func newServer(t *testing.T, historyCountSuggestCAN int) *server {
	t.Helper()
	var opts []temporaltest.TestServerOption
	opts = append(opts, temporaltest.WithT(t))
	if historyCountSuggestCAN > 0 {
		opts = append(opts, temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.HistoryCountSuggestContinueAsNew.Key():        []dynamicconfig.ConstrainedValue{{Value: historyCountSuggestCAN}},
		})))
	}
	srv := temporaltest.NewServer(opts...)
	srv.NewWorker(queue.ControlTaskQueue, control.RegisterWorkflows)
	return &server{srv: srv, c: srv.GetDefaultClient()}
}

// activities starts a worker on taskQueue serving fns under their names (the wire names the
// workflows schedule).
func (s *server) activities(taskQueue string, fns map[string]any) {
	s.srv.NewWorker(taskQueue, func(r worker.Registry) {
		for name, fn := range fns {
			r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
		}
	})
}

// eventually polls ok until it holds, failing the test with what after waitLimit.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitLimit, what)
		}
		<-tick.C
	}
}

// history fetches one run's full history.
func (s *server) history(t *testing.T, id, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	iter := s.c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

// write stores h as dir/name.json.gz: protojson of history.History (the format `temporal
// workflow show --output json` writes and client.HistoryFromJSON reads), gzipped because the
// payloads (a Cluster's whole State in every child's input) make plain JSON some ten times
// larger. Read one with zcat.
func write(t *testing.T, dir, name string, h *historypb.History) {
	t.Helper()
	data, err := protojson.MarshalOptions{Multiline: true, Indent: " "}.Marshal(h)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(append(data, '\n'))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	path := filepath.Join(dir, name+os.Getenv(suffixEnv)+".json.gz")
	if _, err := os.Stat(path); err == nil && os.Getenv(overwriteEnv) != "1" {
		t.Fatalf("%s exists: a committed history is not replaced (runs of its version replay it). Record the new version's with %s=.<version>, or set %s=1 to replace one of the version being written", path, suffixEnv, overwriteEnv)
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	t.Logf("recorded %d events (%d KB, %d KB gzipped) into %s", len(h.Events), len(data)/1024, buf.Len()/1024, path)
}

// recordChildren writes the history of every child workflow h started, as
// dir/<prefix>.<ChildType>-<n>.json (n counts children of that type from 1).
func (s *server) recordChildren(t *testing.T, dir, prefix string, h *historypb.History) {
	t.Helper()
	n := map[string]int{}
	for _, ev := range h.Events {
		a := ev.GetChildWorkflowExecutionStartedEventAttributes()
		if a == nil {
			continue
		}
		typ := a.GetWorkflowType().GetName()
		n[typ]++
		ex := a.GetWorkflowExecution()
		write(t, dir, fmt.Sprintf("%s.%s-%d", prefix, typ, n[typ]), s.history(t, ex.GetWorkflowId(), ex.GetRunId()))
	}
}

// gate blocks an activity until the test opens it, and tells the test when one waits.
type gate struct {
	once    sync.Once
	waiting chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{waiting: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) pass(ctx context.Context) error {
	g.once.Do(func() { close(g.waiting) })
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
