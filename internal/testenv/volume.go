package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Volume is a directory written the way the kubelet writes a Secret or projected
// volume: each version in its own ..<timestamp> directory, published by atomically
// renaming a new ..data symlink over the old one; <dir>/<key> -> ..data/<key>.
type Volume struct {
	t testing.TB
	// Dir is the mounted folder.
	Dir     string
	version string
	n       int
}

// NewVolume writes the first version of data in a temporary folder.
func NewVolume(t testing.TB, data map[string]string) *Volume {
	t.Helper()
	v := &Volume{t: t, Dir: t.TempDir()}
	v.Update(data)
	return v
}

// Update publishes a new version of the files, atomically.
func (v *Volume) Update(data map[string]string) {
	v.t.Helper()
	v.n++
	version := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.Dir, version), 0o755); err != nil {
		v.t.Fatal(err)
	}
	for k, val := range data {
		if err := os.WriteFile(filepath.Join(v.Dir, version, k), []byte(val), 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	for k := range data {
		if _, err := os.Lstat(filepath.Join(v.Dir, k)); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(v.Dir, k)); err != nil {
			v.t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		v.t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, "..") {
			if _, ok := data[name]; !ok {
				_ = os.Remove(filepath.Join(v.Dir, name))
			}
		}
	}
	if v.version != "" {
		if err := os.RemoveAll(filepath.Join(v.Dir, v.version)); err != nil {
			v.t.Fatal(err)
		}
	}
	v.version = version
}
