package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/oauth-client-operator/oauth-client-operator/hack/image"
)

// pauseImage is containerd's sandbox image: imported before the kubelet starts, never pulled.
const pauseImage = "localhost/oauth-cluster/pause:1"

// images are the images of a run, by role: their references carry a digest-derived tag
// so a rebuilt binary rolls the pods that use it.
type images struct {
	Manager, ExampleAPI, ExampleClient, Probe, CoreDNS string
	tars                                               []string
	sizes                                              map[string]int64
}

// imageSpec is one image to build from a Go package (or a prebuilt binary).
type imageSpec struct {
	role    string
	pkg     string // Go package to build, relative to the root
	binary  string // or a binary
	repo    string
	path    string
	root    bool
	pinned  string // a fixed reference instead of repo:<digest tag>
	ports   []int
	manager bool
}

// buildImages compiles the project's binaries (one go build) and writes every image
// tarball into p.images.
func buildImages(ctx context.Context, p paths, bins string) (*images, error) {
	binDir := filepath.Join(p.images, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	specs := []imageSpec{
		{role: "manager", pkg: "./cmd/manager", repo: "localhost/oauth-client-operator", manager: true},
		{role: "example-api", pkg: "./cmd/example-api", repo: "localhost/example-api", path: "/example-api", ports: []int{8080}},
		{role: "example-client", pkg: "./cmd/example-client", repo: "localhost/example-client", path: "/example-client"},
		{role: "cluster-probe", pkg: "./test/cluster/probe", repo: "localhost/cluster-probe", path: "/probe", ports: []int{8080}},
		{role: "pause", pkg: "./hack/cluster/pause", pinned: pauseImage, path: "/pause"},
	}
	if bins != "" {
		specs = append(specs, imageSpec{role: "coredns", binary: filepath.Join(bins, "coredns"), repo: "localhost/coredns", path: "/coredns", ports: []int{53}})
	}
	var pkgs []string
	for _, s := range specs {
		if s.pkg != "" {
			pkgs = append(pkgs, s.pkg)
		}
	}
	logf("building the images (%s)", strings.Join(pkgs, " "))
	// go build -o DIR/ names each binary after its package's folder.
	if err := image.CompileStatic(ctx, p.root, binDir+"/", pkgs...); err != nil {
		return nil, err
	}
	out := &images{sizes: map[string]int64{}}
	for _, s := range specs {
		bin := s.binary
		if bin == "" {
			bin = filepath.Join(binDir, filepath.Base(s.pkg))
		}
		var spec image.Spec
		if s.manager {
			spec = image.Manager("", bin)
		} else {
			spec = image.Spec{Binary: bin, Path: s.path, Ports: s.ports, Root: s.root}
		}
		spec.Tag = "localhost/tmp:tmp"
		img, err := image.Build(spec)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.role, err)
		}
		ref := s.pinned
		if ref == "" {
			d, err := img.Digest()
			if err != nil {
				return nil, err
			}
			ref = s.repo + ":dev-" + d.Hex[:12]
		}
		tag, err := name.ParseReference(ref)
		if err != nil {
			return nil, err
		}
		tar := filepath.Join(p.images, s.role+".tar")
		if err := tarball.WriteToFile(tar, tag, img); err != nil {
			return nil, fmt.Errorf("write image %s: %w", s.role, err)
		}
		if st, err := os.Stat(tar); err == nil {
			out.sizes[s.role] = st.Size()
		}
		out.tars = append(out.tars, tar)
		switch s.role {
		case "manager":
			out.Manager = ref
		case "example-api":
			out.ExampleAPI = ref
		case "example-client":
			out.ExampleClient = ref
		case "cluster-probe":
			out.Probe = ref
		case "coredns":
			out.CoreDNS = ref
		}
	}
	// The references, for the tests (test/cluster) and anyone scripting the cluster.
	return out, writeJSON(filepath.Join(p.dir, "images.json"), out)
}
