//go:build unix && !linux

package procs

import "syscall"

// sysProcAttr puts the child in its own process group. Without Pdeathsig
// (Linux only) children survive a SIGKILL of devstack; a normal stop is clean.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
