//go:build unix && !linux

package devenv

import "syscall"

// sysProcAttr puts a child in its own process group (a terminal's Ctrl-C reaches only
// the runner, which stops the children in order). Unlike Linux, nothing stops the
// children if the runner is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
