package main

import (
	"os"
	"syscall"
)

// stopWithParent asks the kernel for a SIGTERM when the parent process dies, so that
// killing `go run` (or make) stops the environment cleanly instead of orphaning it.
func stopWithParent() {
	ppid := os.Getppid()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if os.Getppid() != ppid { // the parent died before prctl
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
