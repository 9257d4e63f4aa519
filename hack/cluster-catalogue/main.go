// Command cluster-catalogue packs the control-plane components of one or more Kubernetes releases
// (built by hack/k8s-bins) and kok-manager as the machine operator, and writes them with a
// catalogue.yaml of their ClusterPackageVersions into a directory: `make cluster-packages` runs it.
//
//	go run ./hack/cluster-catalogue --out bin/cluster-packages [v1.36.3 v1.37.2]
//
// Without versions it takes every version directory under --k8s-bins.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/manifest"
)

func main() {
	out := flag.String("out", "bin/cluster-packages", "Directory for the artifacts and catalogue.yaml.")
	bins := flag.String("k8s-bins", "bin/k8s", "Directory holding one directory of binaries per Kubernetes version, as hack/k8s-bins/build.sh writes them.")
	manager := flag.String("manager", "bin/kok-manager", "The kok-manager binary, packed as every release's machine operator.")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cluster-catalogue [flags] [KUBE_VERSION...]   e.g. v1.36.3 v1.37.2; none means every version under --k8s-bins\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *bins, *manager, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "cluster-catalogue:", err)
		os.Exit(1)
	}
}

func run(out, bins, manager string, versions []string) error {
	if len(versions) == 0 {
		found, err := filepath.Glob(filepath.Join(bins, "v*.*.*"))
		if err != nil {
			return err
		}
		for _, dir := range found {
			versions = append(versions, filepath.Base(dir))
		}
		if len(versions) == 0 {
			return fmt.Errorf("no Kubernetes versions under %s: run `make k8s-bins` or name the versions", bins)
		}
	}
	binDirs := map[string]string{}
	for _, v := range versions {
		binDirs[v] = filepath.Join(bins, v)
	}
	cpvs, err := clustercatalogue.Build(out, binDirs, manager)
	if err != nil {
		return err
	}
	docs := make([]manifest.Doc, 0, len(cpvs))
	for _, o := range cpvs {
		docs = append(docs, manifest.Doc{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, Spec: o.Spec})
	}
	path := filepath.Join(out, "catalogue.yaml")
	if err := manifest.Write(path, "Control-plane releases, written by `make cluster-packages` (hack/cluster-catalogue). Apply with kubectl.", docs); err != nil {
		return err
	}
	fmt.Printf("wrote %d cluster package versions to %s\n", len(cpvs), path)
	return nil
}
