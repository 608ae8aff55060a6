package devenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ApplyDir creates every object of the YAML files (*.yaml, *.yml; several documents a
// file allowed) in dir, Namespaces first, then in file and document order.
// kustomization.yaml is skipped; objects that exist already are left as they are.
func ApplyDir(ctx context.Context, c client.Client, dir string) error {
	objs, err := ReadObjects(dir)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", obj.GetKind(), objectName(obj), err)
		}
	}
	return nil
}

// ReadObjects parses the objects of the YAML files in dir, as ApplyDir applies them.
func ReadObjects(dir string) ([]*unstructured.Unstructured, error) {
	yamls, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	ymls, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files := append(yamls, ymls...)
	if len(files) == 0 {
		return nil, fmt.Errorf("no YAML files in %s", dir)
	}
	sort.Strings(files)
	var objs []*unstructured.Unstructured
	for _, file := range files {
		base := filepath.Base(file)
		if base == "kustomization.yaml" || base == "kustomization.yml" {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read sample: %w", err)
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 1; ; i++ {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
			}
			var m map[string]any
			if err := yaml.Unmarshal(doc, &m); err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
			}
			if len(m) == 0 {
				continue // only comments
			}
			obj := &unstructured.Unstructured{Object: m}
			if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
				return nil, fmt.Errorf("%s: document %d: no apiVersion or kind", file, i)
			}
			objs = append(objs, obj)
		}
	}
	sort.SliceStable(objs, func(i, j int) bool {
		return objs[i].GetKind() == "Namespace" && objs[j].GetKind() != "Namespace"
	})
	return objs, nil
}

func objectName(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}
