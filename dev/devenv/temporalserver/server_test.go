package temporalserver

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"kok.dev/contract/search"
)

func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	frontend, err := freePort("127.0.0.1")
	require.NoError(t, err)
	ui, err := freePort("127.0.0.1")
	require.NoError(t, err)
	return Config{
		DBFile:       filepath.Join(dir, "temporal.db"),
		FrontendPort: frontend,
		UIPort:       ui,
		Namespaces:   []string{"kok"},
		LogFile:      filepath.Join(dir, "logs", "temporal.log"),
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	require.NoError(t, err)
	return s
}

func dial(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.Address(),
		Namespace: "kok",
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	require.NoError(t, err)
	return c
}

func TestWorkflowsSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server twice")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s := start(t, cfg)

	c := dial(t, s)
	ctx := context.Background()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "kok"})
	require.NoError(t, err)
	nsID := ns.GetNamespaceInfo().GetId()

	resp, err := http.Get(s.UIURL())
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// No worker polls this queue, so the workflow stays running until the restart.
	// It carries kok's search attributes, which Start defined.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "survivor", TaskQueue: "nobody-polls", TypedSearchAttributes: search.Attributes("c1", "Machine"),
	}, "Nothing")
	require.NoError(t, err)
	c.Close()
	require.NoError(t, s.Stop())

	// Another frontend port: the persisted cluster metadata must follow it.
	restarted := cfg
	restarted.FrontendPort, err = freePort("127.0.0.1")
	require.NoError(t, err)
	s = start(t, restarted)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })

	c = dial(t, s)
	defer c.Close()
	ns, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "kok"})
	require.NoError(t, err)
	require.Equal(t, nsID, ns.GetNamespaceInfo().GetId(), "the namespace must be kept, not recreated")

	desc, err := c.DescribeWorkflowExecution(ctx, "survivor", run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())

	// The restart defined the search attributes again (a no-op), and visibility finds the run by them.
	require.Eventually(t, func() bool {
		list, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: search.RunningQuery("c1", "Machine")})
		require.NoError(t, err)
		return len(list.GetExecutions()) == 1 && list.GetExecutions()[0].GetExecution().GetWorkflowId() == "survivor"
	}, 30*time.Second, 200*time.Millisecond)

	logs, err := os.ReadFile(cfg.LogFile)
	require.NoError(t, err)
	require.NotEmpty(t, logs, "server logs belong in the log file")
}

func TestStartRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, mutate := range map[string]func(*Config){
		"no db file":      func(c *Config) { c.DBFile = "" },
		"no log file":     func(c *Config) { c.LogFile = "" },
		"no namespace":    func(c *Config) { c.Namespaces = nil },
		"bad port":        func(c *Config) { c.FrontendPort = 70000 },
		"same port twice": func(c *Config) { c.UIPort = c.FrontendPort },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, dir)
			mutate(&cfg)
			_, err := Start(context.Background(), cfg)
			require.Error(t, err)
		})
	}
}
