package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// File is one JSON document on disk holding a T.
type File[T any] struct {
	Path string
}

// Load reads the document. A missing file is the zero T: a host the agent has never touched.
func (f File[T]) Load() (T, error) {
	var v T
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("agent state %s is corrupt (move it aside to start over): %w", f.Path, err)
	}
	return v, nil
}

// Save replaces the document with v atomically.
func (f File[T]) Save(v T) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	if err := WriteFileAtomic(f.Path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	return nil
}

// WriteFileAtomic writes data to path so that readers see the old content or the new, never a
// mix, even across a power loss: temporary file in the same directory, fsync, rename, fsync of
// the directory. Missing parent directories are created.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	// CreateTemp makes 0600 files and the umask may strip bits: set the mode explicitly.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or a new entry in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// Entry is one line of the journal: a step that completed on the host.
type Entry struct {
	Time    time.Time `json:"time"`
	Package string    `json:"package,omitempty"`
	Version string    `json:"version,omitempty"`
	// Step is what completed, such as "downloaded", "unpacked", "installed", "removed".
	Step   string `json:"step"`
	Detail string `json:"detail,omitempty"`
}

// Journal is an append-only file of Entries, one JSON object per line.
type Journal struct {
	Path string
}

// Append adds e (stamped now when e.Time is zero) and syncs it to disk.
func (j Journal) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.Path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(j.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	return f.Sync()
}

// Read returns every entry in order.
func (j Journal) Read() ([]Entry, error) {
	data, err := os.ReadFile(j.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	out := make([]Entry, 0, len(lines))
	for i, line := range lines {
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			// A crash can cut the last line short; everything before it is intact.
			if i == len(lines)-1 {
				break
			}
			return nil, fmt.Errorf("journal %s line %d: %w", j.Path, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Lock holds the host root for one agent.
type Lock struct {
	f *os.File
}

// AcquireLock takes an exclusive lock on path (created if needed) without waiting: a second agent
// on the same root fails at once, naming the file, instead of fighting the first one.
func AcquireLock(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another kok-agent holds %s: one agent per host root", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release lets another agent take the root.
func (l *Lock) Release() error {
	return l.f.Close()
}
