// Package replaytest loads the committed workflow histories that every family's replay test
// replays. It is imported by tests only.
package replaytest

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// LoadHistory reads a history as `temporal workflow show --output json` writes it, gzipped or
// not.
func LoadHistory(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer func() { _ = zr.Close() }()
		r = zr
	}
	return client.HistoryFromJSON(r, client.HistoryJSONOptions{})
}

// SaveHistory writes the full history of one run as indented JSON (the format LoadHistory
// reads) and returns how many events it holds.
func SaveHistory(ctx context.Context, c client.Client, workflowID, runID, path string) (int, error) {
	hist := &historypb.History{}
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return 0, err
		}
		hist.Events = append(hist.Events, ev)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		return 0, err
	}
	return len(hist.Events), os.WriteFile(path, append(data, '\n'), 0o644)
}
