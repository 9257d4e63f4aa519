package metacluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// FieldManager owns the fields kok dev applies.
const FieldManager = "kok-dev"

var crdResource = schema.GroupVersionResource{
	Group: apiextensionsv1.GroupName, Version: "v1", Resource: "customresourcedefinitions",
}

// ReadCRDs parses every *.yaml and *.yml file in dir and returns the CRDs in them. Anything
// that is not a CustomResourceDefinition, or a name found twice, is an error naming the file.
func ReadCRDs(dir string) ([]*unstructured.Unstructured, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read CRD directory: %w (run `make generate`, or pass --crds)", err)
	}
	var crds []*unstructured.Unstructured
	seen := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		objs, err := readCRDFile(path)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if first, ok := seen[obj.GetName()]; ok {
				return nil, fmt.Errorf("%s: CRD %s is already defined in %s", path, obj.GetName(), first)
			}
			seen[obj.GetName()] = path
			crds = append(crds, obj)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s (run `make generate`, or pass --crds)", dir)
	}
	return crds, nil
}

func readCRDFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read CRD file: %w", err)
	}
	defer func() { _ = f.Close() }()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var content map[string]any
		if err := dec.Decode(&content); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(content) == 0 {
			continue // an empty document between separators
		}
		obj := &unstructured.Unstructured{Object: content}
		gvk := obj.GroupVersionKind()
		if gvk.Group != apiextensionsv1.GroupName || gvk.Version != "v1" || gvk.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s: document %d is a %s, not an apiextensions.k8s.io/v1 CustomResourceDefinition", path, i, gvk)
		}
		if obj.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d: CRD has no metadata.name", path, i)
		}
		objs = append(objs, obj)
	}
}

// ApplyCRDs applies the CRDs in dir with server-side apply and waits, up to timeout, until
// every one is Established. It returns their names, sorted.
func ApplyCRDs(ctx context.Context, cfg *rest.Config, dir string, timeout time.Duration) ([]string, error) {
	crds, err := ReadCRDs(dir)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("meta cluster client: %w", err)
	}
	names := make([]string, 0, len(crds))
	for _, crd := range crds {
		if _, err := dyn.Resource(crdResource).Apply(ctx, crd.GetName(), crd,
			metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return nil, fmt.Errorf("apply CRD %s: %w", crd.GetName(), err)
		}
		names = append(names, crd.GetName())
	}
	slices.Sort(names)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		err := CRDsEstablished(ctx, cfg, names)
		var rejected *NamesRejectedError
		if err == nil || errors.As(err, &rejected) {
			return names, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("CRDs not established within %s: %w", timeout, err)
		case <-ticker.C:
		}
	}
}

// NamesRejectedError reports a CRD whose names the API server refused; waiting will not help.
type NamesRejectedError struct {
	CRD     string
	Message string
}

func (e *NamesRejectedError) Error() string {
	return fmt.Sprintf("CRD %s: names not accepted: %s", e.CRD, e.Message)
}

// CRDsEstablished checks once that every named CRD exists and is Established.
func CRDsEstablished(ctx context.Context, cfg *rest.Config, names []string) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("meta cluster client: %w", err)
	}
	var pending []string
	for _, name := range names {
		crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get CRD %s: %w", name, err)
		}
		established := false
		for _, cond := range crd.Status.Conditions {
			switch {
			case cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse:
				return &NamesRejectedError{CRD: name, Message: cond.Message}
			case cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue:
				established = true
			}
		}
		if !established {
			pending = append(pending, name)
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("not established yet: %s", strings.Join(pending, ", "))
	}
	return nil
}

// EnsureNamespace creates the namespace unless it exists.
func EnsureNamespace(ctx context.Context, cfg *rest.Config, name string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("meta cluster client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
