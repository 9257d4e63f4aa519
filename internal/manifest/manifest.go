package manifest

import (
	"bytes"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Doc is one object to write.
type Doc struct {
	APIVersion string
	Kind       string
	Name       string
	Spec       any
}

// Write writes docs to path as one multi-document YAML file, after a comment line header.
func Write(path, header string, docs []Doc) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s\n", header)
	for _, d := range docs {
		doc, err := yaml.Marshal(struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   map[string]string `json:"metadata"`
			Spec       any               `json:"spec"`
		}{d.APIVersion, d.Kind, map[string]string{"name": d.Name}, d.Spec})
		if err != nil {
			return fmt.Errorf("%s %s: %w", d.Kind, d.Name, err)
		}
		buf.WriteString("---\n")
		buf.Write(doc)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
