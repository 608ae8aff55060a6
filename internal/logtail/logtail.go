// Package logtail reads the end of a child process's log for error messages: the
// local environment (internal/devenv) and the real-node cluster (hack/cluster) both
// name a failed process with its last lines.
package logtail

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxRead is how much of a log's end Tail reads, whatever its size.
const maxRead = 64 << 10

// Tail returns the last n lines of the file at path (of at most its last 64 KiB),
// introduced by its path and each indented with "  | "; when the file cannot be read,
// the error instead.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		_, _ = f.Seek(-maxRead, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last lines of %s:\n", path)
	for _, l := range lines {
		b.WriteString("  | ")
		b.Write(l)
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}
