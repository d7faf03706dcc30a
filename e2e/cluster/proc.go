package cluster

import (
	"os/exec"
	"runtime"
	"syscall"
)

// StartProcess starts cmd so that it cannot outlive the test binary: it gets
// its own process group (a ^C to `go test` does not reach it first, and the
// tests decide how it ends) and PR_SET_PDEATHSIG=SIGKILL, so the kernel kills
// it when the test binary dies, even on a panic or a `go test -timeout`.
//
// PDEATHSIG fires when the *thread* that forked the child exits, and the Go
// runtime may retire threads, so every child is forked from one goroutine
// locked to its OS thread for the life of the process.
func StartProcess(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	spawns <- func() { done <- cmd.Start() }
	return <-done
}

var spawns = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for f := range spawns {
			f()
		}
	}()
}
