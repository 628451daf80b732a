// Package procs runs child processes the way devstack needs them: each in its
// own process group (so a terminal Ctrl-C reaches devstack only, and devstack
// decides the stop order), killed with the parent if devstack itself dies
// (Pdeathsig on Linux), output prefixed line by line, and stopped with SIGTERM
// then SIGKILL after a grace period, always to the whole group so no
// grandchild is left behind.
package procs

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Spec says what to run.
type Spec struct {
	Name string   // used for the "[name] " prefix and in errors
	Path string   // executable
	Args []string // arguments, without argv[0]
	Env  []string // full environment (nil = inherit)
	Dir  string   // working directory ("" = current)
}

// Process is a started child. Its waiter goroutine ends when the child exits.
type Process struct {
	name   string
	cmd    *exec.Cmd
	stdout *LineWriter
	stderr *LineWriter
	done   chan struct{}
	err    error // valid after done is closed
}

// Start starts spec with its stdout and stderr prefixed on out.
func Start(spec Spec, out *Output) (*Process, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = sysProcAttr()
	p := &Process{
		name:   spec.Name,
		cmd:    cmd,
		stdout: out.Prefixed(spec.Name),
		stderr: out.Prefixed(spec.Name),
		done:   make(chan struct{}),
	}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	// If a grandchild keeps the output pipes open after the child exited,
	// stop copying after a while instead of blocking Wait forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.stdout.Flush()
		p.stderr.Flush()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit error (nil for exit status 0); call after Done.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Quiet drops the child's further output; for processes whose shutdown
// messages are noise (Consul in dev mode warns about every closed watch).
func (p *Process) Quiet() {
	p.stdout.Mute()
	p.stderr.Mute()
}

// ErrKilled is returned by Stop when the child did not exit within the grace
// period (or force was closed) and had to be killed.
var ErrKilled = errors.New("did not stop in time, killed")

// Stop sends SIGTERM to the child's process group, waits up to grace (or until
// force is closed), then sends SIGKILL to the group and waits for the exit.
// It returns nil after a clean stop, ErrKilled after a kill.
func (p *Process) Stop(grace time.Duration, force <-chan struct{}) error {
	select {
	case <-p.done:
		p.signalGroup(syscall.SIGKILL) // leftovers of the group, if any
		return nil
	default:
	}
	p.signalGroup(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		p.signalGroup(syscall.SIGKILL)
		return nil
	case <-t.C:
	case <-force:
	}
	p.signalGroup(syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s: %w", p.name, ErrKilled)
}

// signalGroup signals the whole process group; ESRCH (already gone) is fine.
func (p *Process) signalGroup(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}
