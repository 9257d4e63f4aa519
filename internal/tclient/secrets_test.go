package tclient_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/proto"

	"kok.dev/internal/codec"
	"kok.dev/internal/tclient"
)

const leakedSecret = "kubeconfig-token-7f3a9c51"

type secretParams struct{ Token string }

func useToken(_ context.Context, token string) (string, error) { return "used " + token, nil }

func refuseToken(_ context.Context, token string) error {
	return temporal.NewNonRetryableApplicationError("cannot log in with token "+token, "LoginFailed", nil)
}

// secretWorkflow moves the secret through every place a payload lands in history: workflow
// input, memo, activity input and result, an activity failure message, the workflow result.
func secretWorkflow(ctx workflow.Context, p secretParams) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var used string
	if err := workflow.ExecuteActivity(ctx, useToken, p.Token).Get(ctx, &used); err != nil {
		return "", err
	}
	err := workflow.ExecuteActivity(ctx, refuseToken, p.Token).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return "", errors.New("refuseToken did not fail as expected")
	}
	return used + "; " + appErr.Message(), nil
}

// runSecretWorkflow runs secretWorkflow through c and returns its result and its history as
// stored by the server, read through reader.
func runSecretWorkflow(t *testing.T, c, reader client.Client, taskQueue string) (string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	w := worker.New(c, taskQueue, worker.Options{WorkflowPanicPolicy: worker.FailWorkflow})
	w.RegisterWorkflow(secretWorkflow)
	w.RegisterActivity(useToken)
	w.RegisterActivity(refuseToken)
	require.NoError(t, w.Start())
	defer w.Stop()

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "secret/" + taskQueue,
		TaskQueue: taskQueue,
		Memo:      map[string]any{"token": leakedSecret},
	}, secretWorkflow, secretParams{Token: leakedSecret})
	require.NoError(t, err)
	var result string
	require.NoError(t, run.Get(ctx, &result))

	var history bytes.Buffer
	iter := reader.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		event, err := iter.Next()
		require.NoError(t, err)
		raw, err := proto.Marshal(event)
		require.NoError(t, err)
		history.Write(raw)
	}
	require.NotZero(t, history.Len())
	return result, history.Bytes()
}

func TestSecretsNeverReachHistoryInClear(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	plain := ts.GetDefaultClient()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))

	keyFile := filepath.Join(t.TempDir(), "codec.json")
	require.NoError(t, codec.GenerateKeyFile(keyFile))
	encrypting, err := tclient.Dial(t.Context(), tclient.Options{
		Address:      ts.GetFrontendHostPort(),
		Namespace:    ts.GetDefaultNamespace(),
		CodecKeyFile: keyFile,
	}, logger)
	require.NoError(t, err)
	t.Cleanup(encrypting.Close)

	// Control: without the codec the secret is plainly in the history, so the scan below works.
	result, history := runSecretWorkflow(t, plain, plain, "plain")
	require.Equal(t, "used "+leakedSecret+"; cannot log in with token "+leakedSecret, result)
	require.Contains(t, string(history), leakedSecret)

	result, history = runSecretWorkflow(t, encrypting, plain, "encrypted")
	require.Equal(t, "used "+leakedSecret+"; cannot log in with token "+leakedSecret, result,
		"processes holding the key see the data as if it were not encrypted")
	require.NotContains(t, string(history), leakedSecret)
	require.Contains(t, string(history), codec.EncodingEncrypted)

	var got string
	err = plain.GetWorkflow(t.Context(), "secret/encrypted", "").Get(t.Context(), &got)
	require.ErrorContains(t, err, codec.EncodingEncrypted, "a client without the key cannot read the result")
}
