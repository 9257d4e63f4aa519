package cluster_test

import (
	"path/filepath"
	"testing"

	"github.com/nexus-rpc/sdk-go/nexus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"kok.dev/workers/control"
	"kok.dev/workflows/internal/replaytest"
)

// TestReplayCommittedHistories replays every committed history (testdata/*.json and
// *.json.gz: the entity and each operation's child, recorded by tests/replayrecord from the code
// of an earlier version) against today's workflow code, registered exactly as kok-manager
// registers it. A change that would break running Cluster workflows fails here, and must go
// behind workflow.GetVersion instead.
func TestReplayCommittedHistories(t *testing.T) {
	files := histories(t)
	require.NotEmpty(t, files, "no committed histories: KOK_RECORD_HISTORIES=1 go test -run TestRecordCluster ./tests/replayrecord/")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			control.RegisterWorkflows(replayRegistry{r})
			h, err := replaytest.LoadHistory(f)
			require.NoError(t, err)
			require.NoError(t, r.ReplayWorkflowHistory(nil, h))
		})
	}
}

func histories(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"testdata/*.json", "testdata/*.json.gz"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	return files
}

// replayRegistry lets the real registration (workers/control.RegisterWorkflows, which takes a
// worker's registry) fill a replayer: it takes the workflows and ignores activities, which a
// replay never runs.
type replayRegistry struct{ worker.WorkflowReplayer }

func (replayRegistry) RegisterActivity(any)                                         {}
func (replayRegistry) RegisterActivityWithOptions(any, activity.RegisterOptions)    {}
func (replayRegistry) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}
func (replayRegistry) RegisterNexusService(*nexus.Service)                          {}

var _ worker.Registry = replayRegistry{}
