//go:build !linux

package consultest

import "syscall"

// sysProcAttr has nothing to add outside Linux; the agent is stopped by the
// test's cleanup.
func sysProcAttr() *syscall.SysProcAttr { return nil }
