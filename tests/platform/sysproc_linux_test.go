package platform

import "syscall"

// sysProcAttr puts a service in its own process group (so a signal reaches all of it) and has
// the kernel SIGKILL it when the test binary dies, so no service outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
