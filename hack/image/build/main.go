// Command build makes the operator's container image without Docker: it compiles
// ./cmd/manager statically and writes an image equivalent to the Dockerfile's (same
// entrypoint, user 65532, ports and labels) as a tarball for `ctr images import`,
// `kind load image-archive`, `docker load` or `crane push`.
//
//	go run ./hack/image/build -tag example.dev/oauth-client-operator:dev -o bin/image/manager.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/oauth-client-operator/oauth-client-operator/hack/image"
)

func main() {
	tag := flag.String("tag", "ghcr.io/oauth-client-operator/oauth-client-operator:latest", "the image reference written into the tarball")
	out := flag.String("o", "bin/image/oauth-client-operator.tar", "the tarball to write")
	binary := flag.String("binary", "", "a static manager binary to package; default: build ./cmd/manager")
	flag.Parse()
	if err := run(*tag, *out, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(tag, out, binary string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if binary == "" {
		binary = filepath.Join(filepath.Dir(out), "manager")
		if err := image.CompileStatic(context.Background(), ".", binary, "./cmd/manager"); err != nil {
			return err
		}
	}
	if err := image.Write(image.Manager(tag, binary), out); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("image %s written to %s (%.1f MiB)\n", tag, out, float64(st.Size())/(1<<20))
	return nil
}
