//go:build !linux

package platform

import "syscall"

// sysProcAttr puts a service in its own process group, so a signal reaches all of it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
