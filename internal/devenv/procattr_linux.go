package devenv

import "syscall"

// sysProcAttr puts a child in its own process group (a terminal's Ctrl-C reaches only
// the runner, which stops the children in order) and has the kernel send it SIGTERM
// if the runner dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
