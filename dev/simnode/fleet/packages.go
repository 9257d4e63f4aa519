package fleet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kokv1 "kok.dev/api/v1alpha1"
)

// The fleet's packages: two small components with a service each and a system setting, three
// packages per Machine as in the scale review's N=3 column. They are as small as a real package
// can be (a one-file artifact, one short config file) so that the figures measure kok, not the
// packages.
const (
	PackageDaemon  = "fleet-daemon"
	PackageAgent   = "fleet-agent"
	PackageSetting = "fleet-setting"
)

// SettingVersions are the versions of PackageSetting; editing a Machine from one to the other
// is the cheapest real change (a config file rewritten), used to time edit → converged.
var SettingVersions = []string{"1.0.0", "1.1.0"}

// Packages are the package references of a fleet Machine with the given setting version.
func Packages(setting string) []kokv1.PackageRef {
	return []kokv1.PackageRef{
		{Name: PackageDaemon, Version: "1.0.0"},
		{Name: PackageAgent, Version: "1.0.0"},
		{Name: PackageSetting, Version: setting},
	}
}

// Catalogue writes the components' artifacts into dir and returns every MachinePackageVersion
// the fleet's Machines use. Artifact URLs are file:// URLs into dir, shared by all hosts.
func Catalogue(dir string) ([]kokv1.MachinePackageVersion, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []kokv1.MachinePackageVersion
	for _, pkg := range []string{PackageDaemon, PackageAgent} {
		file := filepath.Join(dir, pkg+"-1.0.0.tar.gz")
		digest, err := writeArtifact(file, pkg)
		if err != nil {
			return nil, fmt.Errorf("artifact of %s: %w", pkg, err)
		}
		out = append(out, mpv(pkg, "1.0.0", kokv1.MachinePackageVersionSpec{
			Type:      kokv1.PackageComponent,
			Installer: kokv1.InstallerLocal,
			Artifact:  &kokv1.Artifact{URL: "file://" + file, SHA256: digest},
			Service: &kokv1.Service{
				Name: pkg, Command: []string{"bin/" + pkg}, Args: []string{"--config", "${KOK_ROOT}/etc/" + pkg + ".conf"},
				RestartPolicy: kokv1.RestartAlways,
			},
			ConfigFiles: []kokv1.ConfigFile{{Path: "/etc/" + pkg + ".conf", Content: "# " + pkg + "\nlevel = info\n", Mode: ptr.To[int32](0o644)}},
		}))
	}
	for _, v := range SettingVersions {
		out = append(out, mpv(PackageSetting, v, kokv1.MachinePackageVersionSpec{
			Type:        kokv1.PackageSystemSetting,
			ConfigFiles: []kokv1.ConfigFile{{Path: "/etc/fleet/setting.conf", Content: "# fleet setting\nversion = " + v + "\n", Mode: ptr.To[int32](0o644)}},
		}))
	}
	return out, nil
}

func mpv(pkg, version string, s kokv1.MachinePackageVersionSpec) kokv1.MachinePackageVersion {
	s.Package, s.Version = pkg, version
	return kokv1.MachinePackageVersion{
		TypeMeta:   metav1.TypeMeta{APIVersion: kokv1.SchemeGroupVersion.String(), Kind: "MachinePackageVersion"},
		ObjectMeta: metav1.ObjectMeta{Name: pkg + "-" + version},
		Spec:       s,
	}
}

// writeArtifact writes a tar.gz holding bin/<pkg> (a placeholder: SimulatedServices never runs
// it) and returns its SHA-256. Fixed timestamps make equal inputs give equal digests.
func writeArtifact(path, pkg string) (string, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	body := []byte("#!/bin/sh\n# " + pkg + ": run by fleet.SimulatedServices, never executed\n")
	for _, e := range []struct {
		name string
		mode int64
		body []byte
		dir  bool
	}{{"bin/", 0o755, nil, true}, {"bin/" + pkg, 0o755, body, false}} {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(e.body); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), os.WriteFile(path, buf.Bytes(), 0o644)
}
