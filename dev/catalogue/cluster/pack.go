package clustercatalogue

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// epoch is the timestamp of every artifact entry, so that equal binaries give equal digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pack writes a tar.gz holding one entry, name (such as bin/etcd), with the content of bin,
// mode 0755 and owner root. Nothing else varies between runs: the gzip header carries no name
// or time, and the entry a fixed time and owner. The file appears at path only once complete.
func pack(path, name, bin string) error {
	src, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pack-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename on success
	defer tmp.Close()

	// Binaries of 100 MB and more: the fastest level packs a release in seconds and still
	// halves it.
	gz, err := gzip.NewWriterLevel(tmp, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o755,
		Size:     fi.Size(),
		ModTime:  epoch,
		Uname:    "root",
		Gname:    "root",
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if n, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("read %s: %w", bin, err)
	} else if n != fi.Size() {
		return fmt.Errorf("%s changed size while being packed", bin)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
