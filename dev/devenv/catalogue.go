package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/version"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/agent/fetch"
)

// The catalogues' artifacts are kept in the state directory: the versions that name them are
// immutable and outlive any rebuild of bin/, so their files must too.
const (
	clusterPackagesDir = "cluster-packages"
	nodePackagesDir    = "packages"
	catalogueFile      = "catalogue.yaml"
)

// ensureClusterCatalogue makes sure the meta cluster holds a ClusterPackageVersion for every
// release of the config. Missing ones are packed first (the Kubernetes binaries built beside
// K8sBins, kok-manager as the machine operator); existing ones are left as they are.
func (r *Running) ensureClusterCatalogue(ctx context.Context) error {
	var missing []string
	for _, v := range r.cfg.ClusterVersions {
		err := r.meta.Get(ctx, client.ObjectKey{Name: v}, &kokv1.ClusterPackageVersion{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, v)
		case err != nil:
			return fmt.Errorf("get ClusterPackageVersion %s: %w", v, err)
		}
	}
	if len(missing) == 0 {
		r.detail("ClusterPackageVersions %s are there", strings.Join(r.cfg.ClusterVersions, ", "))
		return nil
	}
	out := filepath.Join(r.cfg.StateDir, clusterPackagesDir)
	r.detail("packing %s and the machine operator into %s (once)", strings.Join(missing, ", "), DisplayPath(out))
	binDirs := map[string]string{}
	for _, v := range missing {
		binDirs[v] = filepath.Join(filepath.Dir(r.cfg.K8sBins), v)
	}
	cpvs, err := clustercatalogue.Build(out, binDirs, r.cfg.ManagerBin)
	if err != nil {
		return err
	}
	for i := range cpvs {
		if err := createIfAbsent(ctx, r.meta, &cpvs[i]); err != nil {
			return err
		}
		r.detail("created ClusterPackageVersion %s", cpvs[i].Name)
	}
	return nil
}

// readNodeCatalogue reads the MachinePackageVersions of dir/catalogue.yaml.
func readNodeCatalogue(dir string) ([]kokv1.MachinePackageVersion, error) {
	path := filepath.Join(dir, catalogueFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node package catalogue: %w: run `make node-packages` (or pass --node-packages)", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []kokv1.MachinePackageVersion
	for i := 0; ; i++ {
		var m kokv1.MachinePackageVersion
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if m.Name == "" {
			continue
		}
		if m.Kind != "MachinePackageVersion" {
			return nil, fmt.Errorf("%s: document %d is a %s, not a MachinePackageVersion", path, i, m.Kind)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no MachinePackageVersion: run `make node-packages`", path)
	}
	return out, nil
}

// keepArtifact copies a file:// artifact into dir, checking its sha256 on the way, and points
// the version at the copy. A copy already there with the right digest is kept.
func keepArtifact(mpv *kokv1.MachinePackageVersion, dir string) error {
	a := mpv.Spec.Artifact
	if a == nil || !strings.HasPrefix(a.URL, "file://") {
		return nil
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return fmt.Errorf("%s: artifact URL %q: %w", mpv.Name, a.URL, err)
	}
	dst := filepath.Join(dir, filepath.Base(u.Path))
	if sum, err := fetch.SHA256File(dst); err == nil && sum == a.SHA256 {
		a.URL = "file://" + dst
		return nil
	}
	sum, err := fetch.SHA256File(u.Path)
	if err != nil {
		return fmt.Errorf("%s: %w: run `make node-packages`", mpv.Name, err)
	}
	if sum != a.SHA256 {
		return fmt.Errorf("%s: %s has sha256 %s, the catalogue says %s: run `make node-packages` again", mpv.Name, u.Path, sum, a.SHA256)
	}
	if err := copyFile(u.Path, dst); err != nil {
		return fmt.Errorf("%s: %w", mpv.Name, err)
	}
	a.URL = "file://" + dst
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// createIfAbsent creates obj unless an object of its name exists, which is left as it is:
// a second `kok dev up` on the same state recreates nothing.
func createIfAbsent(ctx context.Context, c client.Client, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		kind := fmt.Sprintf("%T", obj)
		return fmt.Errorf("create %s %s: %w", kind[strings.LastIndexByte(kind, '.')+1:], client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// sortVersions sorts versions oldest first; unparsable ones go last, by name.
func sortVersions(vs []string) []string {
	out := append([]string(nil), vs...)
	sort.SliceStable(out, func(i, j int) bool {
		a, errA := version.ParseGeneric(out[i])
		b, errB := version.ParseGeneric(out[j])
		switch {
		case errA != nil || errB != nil:
			return errA == nil || (errB != nil && out[i] < out[j])
		default:
			return a.LessThan(b)
		}
	})
	return out
}
