// Package machine describes the machine a benchmark ran on, for the reports of
// test/load (make bench) and test/scale (make bench-scale): figures mean little
// without the CPU and how busy it was.
package machine

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
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

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// ProcessCPU is the user and system CPU time a process has spent (0 when unknown).
func ProcessCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from
	// the last ')'. utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// Children returns the process ids of ppid's children whose command name (as
// /proc/<pid>/stat has it, at most 15 characters) is one of names.
func Children(ppid int, names ...string) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:]) // state ppid ...
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		for _, n := range names {
			if s[open+1:end] == n {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
