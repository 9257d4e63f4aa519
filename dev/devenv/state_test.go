package devenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLockIsExclusiveAndFreedByRelease(t *testing.T) {
	dir := t.TempDir()
	l, err := acquireLock(dir)
	require.NoError(t, err)

	_, err = acquireLock(dir)
	require.ErrorContains(t, err, fmt.Sprintf("another kok dev up (pid %d) is using %s", os.Getpid(), dir))
	holder, err := lockHolder(dir)
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), holder)

	require.NoError(t, l.release())
	holder, err = lockHolder(dir)
	require.NoError(t, err)
	require.Zero(t, holder)
	l, err = acquireLock(dir)
	require.NoError(t, err)
	require.NoError(t, l.release())
}

func TestStaleLockIsTakenOver(t *testing.T) {
	dir := t.TempDir()
	// What a killed `kok dev up` leaves: its pid in the file, no lock held.
	require.NoError(t, os.WriteFile(filepath.Join(dir, lockFile), []byte("999999999\n"), 0o644))
	l, err := acquireLock(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, l.release()) }()
	data, err := os.ReadFile(filepath.Join(dir, lockFile))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%d\n", os.Getpid()), string(data))
}

func TestReadStateSaysWhyNothingRuns(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadState(dir)
	require.ErrorIs(t, err, ErrNotRunning)
	require.ErrorContains(t, err, "start it with `kok dev up`")

	// dev.json from a run that was killed.
	require.NoError(t, writeState(dir, &State{PID: 999999999}))
	_, err = ReadState(dir)
	require.ErrorIs(t, err, ErrNotRunning)
	require.ErrorContains(t, err, "ended without cleaning up")

	l, err := acquireLock(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, l.release()) }()
	s, err := ReadState(dir)
	require.NoError(t, err)
	require.Equal(t, 999999999, s.PID)

	require.NoError(t, os.Remove(filepath.Join(dir, stateFile)))
	_, err = ReadState(dir)
	require.ErrorIs(t, err, ErrNotRunning)
	require.ErrorContains(t, err, fmt.Sprintf("pid %d is still starting it", os.Getpid()))
}
