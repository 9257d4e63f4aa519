package render

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
)

// Output formats of `kok get`; the empty format is the table.
const (
	OutputWide = "wide"
	OutputYAML = "yaml"
	OutputJSON = "json"
	OutputName = "name"
)

// CheckOutput returns an error when format is not one `kok get` prints.
func CheckOutput(format string) error {
	switch format {
	case "", OutputWide, OutputYAML, OutputJSON, OutputName:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o wide, yaml, json or name (or leave -o out for the table)", format)
}

// NoResources tells errOut that nothing matched. It goes to stderr, as kubectl does, so that
// scripts reading stdout see nothing.
func NoResources(errOut io.Writer) error {
	_, err := fmt.Fprintln(errOut, "No resources found.")
	return err
}

// Names writes `-o name` lines: resource.group/name, such as machine.kok.dev/w1.
func Names[T client.Object](out io.Writer, qualifiedResource string, objs []T) error {
	for _, o := range objs {
		if _, err := fmt.Fprintf(out, "%s/%s\n", qualifiedResource, o.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// list is the List kubectl prints for several objects, so the output can be applied again.
type list[T any] struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []T    `json:"items"`
}

// Objects writes the kok objects objs of kind as YAML or JSON (format). single says one object
// was asked for by name, so it is printed alone rather than in a List.
func Objects[T client.Object](out io.Writer, kind string, objs []T, format string, single bool) error {
	items := make([]T, len(objs))
	for i, o := range objs {
		c := o.DeepCopyObject().(T)
		// The client drops type information from decoded objects; the printed ones need it.
		c.GetObjectKind().SetGroupVersionKind(kokv1.SchemeGroupVersion.WithKind(kind))
		// Server bookkeeping nobody reads here, as kubectl hides it by default.
		c.SetManagedFields(nil)
		items[i] = c
	}
	var v any = list[T]{APIVersion: "v1", Kind: "List", Items: items}
	if single && len(items) == 1 {
		v = items[0]
	}
	var b []byte
	var err error
	if format == OutputJSON {
		b, err = json.MarshalIndent(v, "", "    ")
		b = append(b, '\n')
	} else {
		b, err = yaml.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encode %s objects as %s: %w", kind, format, err)
	}
	_, err = out.Write(b)
	return err
}
