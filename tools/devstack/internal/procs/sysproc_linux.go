package procs

import "syscall"

// sysProcAttr puts the child in its own process group and asks the kernel to
// SIGKILL it when devstack dies, even by SIGKILL, so nothing outlives us.
// (Pdeathsig fires when the creating OS thread exits; the Go runtime keeps
// its threads for the life of the process, which is what we rely on.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
