// Command catalogue builds the simulated node packages and writes them, with a catalogue.yaml
// of their MachinePackageVersions, into a directory: `make node-packages` runs it.
//
//	go run ./hack/catalogue --out bin/packages [--base-url http://host:port/packages]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/simnode/catalogue"
)

func main() {
	out := flag.String("out", "bin/packages", "Directory for the artifacts and catalogue.yaml.")
	baseURL := flag.String("base-url", "", "URL the artifacts are served from; empty means file:// URLs of --out.")
	flag.Parse()
	if err := run(*out, *baseURL); err != nil {
		fmt.Fprintln(os.Stderr, "catalogue:", err)
		os.Exit(1)
	}
}

func run(out, baseURL string) error {
	mpvs, err := catalogue.Build(out, baseURL)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("# Simulated node packages, written by `make node-packages` (hack/catalogue). Apply with kubectl.\n")
	for _, m := range mpvs {
		// Only what a user would write: no status, no server-set metadata.
		doc, err := yaml.Marshal(struct {
			APIVersion string                          `json:"apiVersion"`
			Kind       string                          `json:"kind"`
			Metadata   map[string]string               `json:"metadata"`
			Spec       kokv1.MachinePackageVersionSpec `json:"spec"`
		}{m.APIVersion, m.Kind, map[string]string{"name": m.Name}, m.Spec})
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(doc)
	}
	path := filepath.Join(out, "catalogue.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %d package versions to %s\n", len(mpvs), path)
	return nil
}
