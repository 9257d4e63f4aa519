// Package replaytest loads the committed workflow histories that every family's replay test
// replays. It is imported by tests only.
package replaytest

import (
	"compress/gzip"
	"io"
	"os"
	"strings"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
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
