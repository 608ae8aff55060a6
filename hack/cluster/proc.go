package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/logtail"
)

// paths are the files of one run.
type paths struct {
	root    string // the repository
	dir     string // bin/cluster: cached binaries and images, and the run's state
	images  string // image tarballs
	run     string // the running node's data: certificates, etcd, containerd, kubelet
	pki     string
	logs    string
	kubecfg string // the admin kubeconfig users and tests get
}

func newPaths(root, dir string) paths {
	run := filepath.Join(dir, "run")
	return paths{
		root:    root,
		dir:     dir,
		images:  filepath.Join(dir, "images"),
		run:     run,
		pki:     filepath.Join(run, "pki"),
		logs:    filepath.Join(run, "logs"),
		kubecfg: filepath.Join(dir, "kubeconfig"),
	}
}

// proc is a daemon of the node, in its own process group, with its output in a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	stopped atomic.Bool
}

// exited is closed with the name of each daemon that stops on its own.
func startProc(name, logDir string, exited chan<- string, args ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	_, _ = fmt.Fprintf(f, "=== %s\n", strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group (a Ctrl-C in the terminal reaches only this program, which
	// stops the daemons in order), and SIGKILL if this program dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
		if !p.stopped.Load() && exited != nil {
			exited <- name
		}
	}()
	return p, nil
}

// stop sends SIGTERM, waits up to timeout, then SIGKILL.
func (p *proc) stop(timeout time.Duration) {
	if p == nil {
		return
	}
	p.stopped.Store(true)
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tail is the end of the daemon's log, for error messages.
func (p *proc) tail(n int) string { return logtail.Tail(p.logPath, n) }

// sh runs a command and returns its trimmed output; the error names the command and
// carries what it printed.
func sh(args ...string) (string, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// shInput is sh with stdin.
func shInput(input string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var errStopped = errors.New("stopped")
