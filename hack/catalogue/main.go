// Command catalogue builds the simulated node packages and writes them, with a catalogue.yaml
// of their MachinePackageVersions, into a directory: `make node-packages` runs it.
//
//	go run ./hack/catalogue --out bin/packages [--base-url http://host:port/packages]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"kok.dev/dev/simnode/catalogue"
	"kok.dev/internal/manifest"
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
	docs := make([]manifest.Doc, 0, len(mpvs))
	for _, o := range mpvs {
		docs = append(docs, manifest.Doc{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, Spec: o.Spec})
	}
	path := filepath.Join(out, "catalogue.yaml")
	if err := manifest.Write(path, "Simulated node packages, written by `make node-packages` (hack/catalogue). Apply with kubectl.", docs); err != nil {
		return err
	}
	fmt.Printf("wrote %d package versions to %s\n", len(mpvs), path)
	return nil
}
