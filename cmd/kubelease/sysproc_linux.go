package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send SIGKILL to c's process when the thread
// that started it exits, so that a kubelease killed with SIGKILL (which can
// forward nothing) does not leave CMD running while a peer takes the lease.
// The caller must start c from a goroutine locked to its thread until c
// exits.
func dieWithParent(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
