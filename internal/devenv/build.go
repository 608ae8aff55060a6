package devenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries are the programs the environment runs.
type Binaries struct {
	// Manager is the operator (./cmd/manager).
	Manager string
	// ExampleAPI is ./cmd/example-api; empty when the repository has none.
	ExampleAPI string
}

// HasExampleAPI reports whether the repository at root has the example API's package.
func HasExampleAPI(root string) bool {
	matches, _ := filepath.Glob(filepath.Join(root, "cmd", "example-api", "*.go"))
	return len(matches) > 0
}

// PrebuiltEnv names a folder that holds the binaries already built (`make test` builds
// them once for every test suite); BuildBinaries then builds nothing.
const PrebuiltEnv = "OAUTH_PREBUILT_BINARIES"

// BuildBinaries builds ./cmd/manager, and ./cmd/example-api when it exists, of the
// repository at root into outDir with one `go build`; when $OAUTH_PREBUILT_BINARIES
// names a folder that holds them, it returns those instead.
func BuildBinaries(ctx context.Context, root, outDir string) (*Binaries, error) {
	if dir := os.Getenv(PrebuiltEnv); dir != "" {
		return prebuilt(root, dir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", outDir, err)
	}
	bins := &Binaries{Manager: filepath.Join(outDir, "manager")}
	pkgs := []string{"./cmd/manager"}
	if HasExampleAPI(root) {
		bins.ExampleAPI = filepath.Join(outDir, "example-api")
		pkgs = append(pkgs, "./cmd/example-api")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build binaries: the go command is not on PATH: %w", err)
	}
	// With several packages, -o names a folder ("dir/"), each binary named after its
	// package folder.
	cmd := exec.CommandContext(ctx, goTool, append([]string{"build", "-o", outDir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %v: %w\n%s", pkgs, err, bytes.TrimSpace(out.Bytes()))
	}
	return bins, nil
}

// prebuilt are the binaries in dir, which must hold every one BuildBinaries would build.
func prebuilt(root, dir string) (*Binaries, error) {
	bins := &Binaries{Manager: filepath.Join(dir, "manager")}
	if HasExampleAPI(root) {
		bins.ExampleAPI = filepath.Join(dir, "example-api")
	}
	for _, b := range []string{bins.Manager, bins.ExampleAPI} {
		if b == "" {
			continue
		}
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", PrebuiltEnv, dir, err)
		}
	}
	return bins, nil
}
