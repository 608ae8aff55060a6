package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// minimalProcess is the minimal server running as a child process (this same binary
// with -serve-minimal), so that it, like the manager, is a process of its own and does
// not share a Go scheduler with the load generator.
type minimalProcess struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
	err   error
}

func startMinimal(cfg minimalConfig) (*minimalProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("minimal server: %w", err)
	}
	cmd := exec.Command(self, "-serve-minimal")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("minimal server: %w", err)
	}
	p := &minimalProcess{cmd: cmd, stdin: stdin}
	line, _ := json.Marshal(cfg)
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("minimal server: %w", err)
	}
	got := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		got <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-got:
		url, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			_ = p.stop()
			return nil, fmt.Errorf("minimal server did not start: %q", l)
		}
		p.url = url
	case <-time.After(30 * time.Second):
		_ = p.stop()
		return nil, errors.New("minimal server did not start within 30s")
	}
	return p, nil
}

// stop closes the child's stdin, which ends it, and waits; SIGKILL after 10s.
func (p *minimalProcess) stop() error {
	p.once.Do(func() {
		_ = p.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				p.err = fmt.Errorf("minimal server: %w", err)
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			p.err = fmt.Errorf("minimal server did not stop within 10s; killed: %w", <-done)
		}
	})
	return p.err
}
