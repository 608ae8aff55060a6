// Package vendorable checks the design's promise about the public packages:
// pkg/client and pkg/verifier import no other package of this project, so users can
// vendor them alone (and a shared helper in internal/ would break that).
package vendorable

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/oauth-client-operator/oauth-client-operator"

func TestPublicPackagesImportNoProjectPackage(t *testing.T) {
	t.Parallel()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, pkg := range []string{"pkg/client", "pkg/verifier"} {
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, module+"/") && dep != module+"/"+pkg {
				t.Errorf("%s imports %s: it must import no other package of the project", pkg, dep)
			}
		}
	}
}
