package installer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

// tarGz writes a tar.gz artifact into dir and returns its path and digest.
func tarGz(t *testing.T, dir, name string, entries ...entry) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Size: int64(len(e.body)), Linkname: e.link}))
		_, err := tw.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	sum := sha256.Sum256(buf.Bytes())
	return path, hex.EncodeToString(sum[:])
}

func TestLocalInstallUpgradeRollbackRemove(t *testing.T) {
	ctx := context.Background()
	root, src := t.TempDir(), t.TempDir()
	l := &Local{Root: root}
	a1, d1 := tarGz(t, src, "v1.tar.gz",
		entry{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "./bin/tool", body: "#!/bin/sh\necho 1\n", mode: 0o755},
		entry{name: "./VERSION", body: "1.0.0\n"},
		entry{name: "./tool", typ: tar.TypeSymlink, link: "bin/tool"},
	)
	a2, d2 := tarGz(t, src, "v2.tar.gz", entry{name: "bin/tool", body: "#!/bin/sh\necho 2\n", mode: 0o755})
	v1 := Package{Name: "tool", Version: "1.0.0", SHA256: d1}
	v2 := Package{Name: "tool", Version: "2.0.0", SHA256: d2}

	ok, err := l.Installed(ctx, v1)
	require.NoError(t, err)
	require.False(t, ok)
	var progress []string
	require.NoError(t, l.Install(ctx, v1, a1, func(s string) { progress = append(progress, s) }))
	ok, err = l.Installed(ctx, v1)
	require.NoError(t, err)
	require.True(t, ok)
	dir := filepath.Join(root, "opt/kok/packages/tool/1.0.0")
	require.Equal(t, dir, l.PackageDir(v1))
	fi, err := os.Stat(filepath.Join(dir, "bin/tool"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	link, err := os.Readlink(filepath.Join(dir, "tool"))
	require.NoError(t, err)
	require.Equal(t, "bin/tool", link)
	require.Equal(t, "1.0.0", l.Current("tool"))

	// Again: nothing to do, even without the artifact.
	require.NoError(t, l.Install(ctx, v1, "", nil))

	require.NoError(t, l.Install(ctx, v2, a2, nil))
	require.Equal(t, "2.0.0", l.Current("tool"))
	require.True(t, l.Staged(v1), "the previous version stays for rollback")
	// Rollback is a symlink switch.
	require.NoError(t, l.Install(ctx, v1, "", nil))
	require.Equal(t, "1.0.0", l.Current("tool"))

	require.NoError(t, l.Prune("tool", "1.0.0"))
	require.False(t, l.Staged(v2))
	require.True(t, l.Staged(v1))

	require.NoError(t, l.Remove(ctx, "tool"))
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/tool"))
	require.NoError(t, l.Remove(ctx, "tool"), "removing an absent package succeeds")
}

func TestLocalStagedNeedsSameArtifact(t *testing.T) {
	ctx := context.Background()
	root, src := t.TempDir(), t.TempDir()
	l := &Local{Root: root}
	a, d := tarGz(t, src, "a.tar.gz", entry{name: "f", body: "a"})
	b, db := tarGz(t, src, "b.tar.gz", entry{name: "f", body: "b"})
	require.NoError(t, l.Install(ctx, Package{Name: "p", Version: "1", SHA256: d}, a, nil))
	rebuilt := Package{Name: "p", Version: "1", SHA256: db}
	require.False(t, l.Staged(rebuilt), "a directory unpacked from another artifact is not this one")
	ok, err := l.Installed(ctx, rebuilt)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, l.Install(ctx, rebuilt, b, nil))
	got, err := os.ReadFile(filepath.Join(l.PackageDir(rebuilt), "f"))
	require.NoError(t, err)
	require.Equal(t, "b", string(got))
}

func TestLocalInterruptedUnpackIsNotInstalled(t *testing.T) {
	root := t.TempDir()
	l := &Local{Root: root}
	// What a kill in the middle of unpacking leaves: a temporary directory, never the version's.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "opt/kok/packages/p/.unpack-1-123/bin"), 0o755))
	require.False(t, l.Staged(Package{Name: "p", Version: "1"}))
	require.NoError(t, l.Prune("p"))
	entries, err := os.ReadDir(filepath.Join(root, "opt/kok/packages/p"))
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestLocalRefusesEscapingArtifacts(t *testing.T) {
	ctx := context.Background()
	for name, e := range map[string]entry{
		"dot-dot":          {name: "../evil", body: "x"},
		"absolute symlink": {name: "l", typ: tar.TypeSymlink, link: "/etc/passwd"},
		"escaping symlink": {name: "a/l", typ: tar.TypeSymlink, link: "../../x"},
		"device":           {name: "dev", typ: tar.TypeChar},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			a, d := tarGz(t, t.TempDir(), "bad.tar.gz", e)
			err := (&Local{Root: root}).Install(ctx, Package{Name: "p", Version: "1", SHA256: d}, a, nil)
			require.Error(t, err)
			require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/p/1"))
		})
	}
	root := t.TempDir()
	notGz := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.WriteFile(notGz, []byte("plain"), 0o644))
	require.ErrorContains(t, (&Local{Root: root}).Install(ctx, Package{Name: "p", Version: "1"}, notGz, nil), "not gzip")
}
