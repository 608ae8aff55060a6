// Package machine describes the machine a benchmark ran on, for the reports of
// test/load (make bench) and test/scale (make bench-scale): figures mean little
// without the CPU and how busy it was.
package machine

import (
	"os"
	"strings"
)

// CPUModel is /proc/cpuinfo's first model name ("unknown CPU" when there is none).
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// CPUs is the number of processors /proc/cpuinfo lists (the machine's, whatever this
// process may use), 0 when unknown.
func CPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	n := strings.Count(string(b), "\nprocessor")
	if strings.HasPrefix(string(b), "processor") {
		n++
	}
	return n
}

// LoadAverage is /proc/loadavg's 1, 5 and 15 minute load averages ("unknown" when
// unreadable).
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
