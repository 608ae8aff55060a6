// Package image builds container images without a container engine: one layer holding
// a static binary (plus the few files a distroless base would give it) on an empty
// base, written as a tarball that `ctr images import`, `kind load image-archive` and
// `docker load` read. It uses go-containerregistry, as `crane append` and
// `crane mutate` do.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NonRoot is the user and group images run as: distroless's "nonroot".
const NonRoot = 65532

// caBundle is where Debian (and distroless) keep the CA certificates.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// Spec describes one image.
type Spec struct {
	// Tag is the image reference, e.g. "example.dev/manager:dev".
	Tag string
	// Binary is the static executable to put in the image.
	Binary string
	// Path is where the binary goes in the image, e.g. "/manager".
	Path string
	// Args are the default arguments (the image's Cmd); the entrypoint is Path.
	Args []string
	// Ports are the exposed TCP ports.
	Ports []int
	// Labels are the image's labels (org.opencontainers.image.*).
	Labels map[string]string
	// Root runs the image as root instead of NonRoot (CoreDNS binds port 53).
	Root bool
}

// Write builds the image of spec and writes it as a tarball to out.
func Write(spec Spec, out string) error {
	img, err := Build(spec)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(spec.Tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", spec.Tag, err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("write image %s: %w", spec.Tag, err)
	}
	return os.Rename(tmp, out)
}

// Build returns the image of spec.
func Build(spec Spec) (v1.Image, error) {
	if spec.Binary == "" || spec.Path == "" || spec.Tag == "" {
		return nil, errors.New("image: Tag, Binary and Path are required")
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	layerTar, err := rootfs(spec.Path, bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	// Change a copy of the image's own config: it carries rootfs.diff_ids, which a
	// config built from scratch would drop (containerd then refuses the import).
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{spec.Path}
	cf.Config.Cmd = spec.Args
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + caBundle}
	cf.Config.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
	if spec.Root {
		cf.Config.User = "0:0"
	}
	cf.Config.Labels = spec.Labels
	if len(spec.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.Ports {
			cf.Config.ExposedPorts[fmt.Sprintf("%d/tcp", p)] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// rootfs is the image's only layer: the binary, /etc/passwd and /etc/group naming
// root and nonroot (65532) as distroless's do, a world-writable /tmp, and the host's
// CA bundle when it has one (for outbound TLS). Every entry has the same time, so
// the same binary gives the same layer digest.
func rootfs(binPath string, bin []byte) ([]byte, error) {
	files := map[string][]byte{
		binPath:       bin,
		"/etc/passwd": []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot)),
		"/etc/group":  []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot)),
	}
	if ca, err := os.ReadFile(caBundle); err == nil {
		files[caBundle] = ca
	}
	dirs := map[string]int64{"/tmp": 0o1777, "/home/nonroot": 0o700}
	for p := range files {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names) // parents before children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, n := range names {
		hdr := &tar.Header{Name: n[1:], ModTime: mtime, Format: tar.FormatPAX}
		if mode, ok := dirs[n]; ok {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", mode
			if n == "/home/nonroot" {
				hdr.Uid, hdr.Gid = NonRoot, NonRoot
			}
		} else {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(files[n]))
			if n == binPath {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(files[n]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Manager is the spec of the operator's image, the same as the Dockerfile's: the static
// manager at /manager as the entrypoint, non-root 65532, the token, metrics and
// health ports, the OCI labels.
func Manager(tag, binary string) Spec {
	return Spec{
		Tag:    tag,
		Binary: binary,
		Path:   "/manager",
		Ports:  []int{8443, 8080, 8081},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "oauth-client-operator",
			"org.opencontainers.image.description": "Machine-to-machine OAuth 2.0 clients as Kubernetes objects, with a bundled token server",
			"org.opencontainers.image.source":      "https://github.com/oauth-client-operator/oauth-client-operator",
		},
	}
}

// CompileStatic builds Go packages (e.g. "./cmd/manager", relative to dir) into out
// (a file, or a folder ending in "/" for several) as the Dockerfile does: no cgo,
// trimmed paths, no debug information.
func CompileStatic(ctx context.Context, dir, out string, pkgs ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}
