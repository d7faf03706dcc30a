//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the system has no parent-death signal:
// there, CMD outlives a kubelease killed with SIGKILL.
func dieWithParent(*exec.Cmd) {}
