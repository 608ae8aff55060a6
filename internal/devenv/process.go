package devenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/logtail"
)

// child is a process the environment started: the manager or the example API.
type child struct {
	name     string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited and been reaped
	waitErr  error         // valid after done
	expected atomic.Bool   // the exit is ours (Stop, RestartOperator)
}

// startChild runs args, with env added to this process's environment, in its own
// process group with stdout and stderr to logPath (truncated, or appended to on a
// restart). On Linux the child gets SIGTERM if this process dies. An exit nobody asked
// for is reported through e.fail, except a manager replica's while another replica
// runs (see childExited).
func (e *Env) startChild(name, logPath string, appendLog bool, args, env []string) (*child, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = e.opts.Dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	_, _ = fmt.Fprintf(logFile, "=== devenv: %s %s (%s)\n", name, strings.Join(args, " "), time.Now().Format(time.RFC3339))
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
		if !c.expected.Load() {
			status := "exited"
			if c.waitErr != nil {
				status = c.waitErr.Error()
			}
			e.childExited(c, fmt.Errorf("%s (pid %d) stopped unexpectedly: %s\n%s", name, cmd.Process.Pid, status, c.tail(20)))
		}
	}()
	return c, nil
}

// childExited handles an exit nobody asked for. With several manager replicas, one
// that stops (say, the leader, to watch another take over) is reported and the
// environment goes on while another replica runs; anything else fails it.
func (e *Env) childExited(c *child, err error) {
	e.mu.Lock()
	replica, running := false, 0
	for _, m := range e.managers {
		if m == c {
			replica = true
		} else if m != nil && !m.exited() && !m.expected.Load() {
			running++
		}
	}
	e.mu.Unlock()
	if replica && len(e.managers) > 1 && running > 0 {
		e.logf("%v\n%d of %d manager replicas still run; tokens are served by the others", err, running, len(e.managers))
		return
	}
	e.fail(err)
}

func (c *child) expect() { c.expected.Store(true) }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, waits up to timeout, then sends
// SIGKILL and waits for the exit.
func (c *child) stop(timeout time.Duration) error {
	c.expect()
	if c.exited() {
		return nil
	}
	pgid := c.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-c.done:
		return fmt.Errorf("stop %s: killed after %s without exiting on SIGTERM", c.name, timeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s: pid %d survived SIGKILL", c.name, pgid)
	}
}

// tail returns the last n lines of the child's log, introduced by its path.
func (c *child) tail(n int) string { return logtail.Tail(c.logPath, n) }
