package logtail

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short.log")
	if err := os.WriteFile(short, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long.log")
	var b strings.Builder
	for i := range 20000 { // ~190 KiB: more than Tail reads
		fmt.Fprintf(&b, "line %05d\n", i)
	}
	if err := os.WriteFile(long, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		n    int
		want string
	}{
		{short, 2, "last lines of " + short + ":\n  | two\n  | three"},
		{short, 10, "last lines of " + short + ":\n  | one\n  | two\n  | three"},
		{long, 2, "last lines of " + long + ":\n  | line 19998\n  | line 19999"},
	} {
		if got := Tail(tc.path, tc.n); got != tc.want {
			t.Errorf("Tail(%s, %d) = %q, want %q", filepath.Base(tc.path), tc.n, got, tc.want)
		}
	}
	if got := Tail(filepath.Join(dir, "missing.log"), 3); !strings.Contains(got, "no such file") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}
