package state

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type record struct {
	Boots    int
	Packages map[string]string
}

func TestFileRoundTrip(t *testing.T) {
	f := File[record]{Path: filepath.Join(t.TempDir(), "var/lib/kok/state.json")}
	got, err := f.Load()
	require.NoError(t, err)
	require.Zero(t, got, "a missing file is a host never touched")

	want := record{Boots: 2, Packages: map[string]string{"kubelet": "1.0.0"}}
	require.NoError(t, f.Save(want))
	got, err = f.Load()
	require.NoError(t, err)
	require.Equal(t, want, got)

	fi, err := os.Stat(f.Path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(f.Path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files are left behind")
}

func TestFileCorruptNamesPath(t *testing.T) {
	f := File[record]{Path: filepath.Join(t.TempDir(), "state.json")}
	require.NoError(t, os.WriteFile(f.Path, []byte("{not json"), 0o600))
	_, err := f.Load()
	require.ErrorContains(t, err, f.Path)
}

func TestJournal(t *testing.T) {
	j := Journal{Path: filepath.Join(t.TempDir(), "journal.jsonl")}
	got, err := j.Read()
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, j.Append(Entry{Package: "kubelet", Version: "1.0.0", Step: "unpacked"}))
	require.NoError(t, j.Append(Entry{Package: "kubelet", Version: "1.0.0", Step: "installed"}))

	// A crash in the middle of the last write leaves a cut line, which is ignored.
	f, err := os.OpenFile(j.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"time":"2026-`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	got, err = j.Read()
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "unpacked", got[0].Step)
	require.Equal(t, "installed", got[1].Step)
	require.False(t, got[0].Time.IsZero())
}

func TestLockIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run/kok/agent.lock")
	l, err := AcquireLock(path)
	require.NoError(t, err)
	_, err = AcquireLock(path)
	require.ErrorContains(t, err, "another kok-agent holds")
	require.NoError(t, l.Release())
	l, err = AcquireLock(path)
	require.NoError(t, err)
	require.NoError(t, l.Release())
}
