package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the kubelease binary that TestMain builds, for the tests that
// run it as separate OS processes.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubelease-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kubelease")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a kubelease binary running as its own OS process.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed when it has exited
	code   int           // its exit status, once done is closed
}

// start starts the kubelease binary with args.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			p.code = exitStatus(ee.ProcessState)
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits up to d for p to exit and returns its exit status.
func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	code := p.waitCode(d)
	if code == -1 {
		t.Fatalf("kubelease %v: still running after %s (stderr %q)", p.cmd.Args[1:], d, p.stderr.String())
	}
	return code
}

// waitCode waits up to d for p to exit and returns its exit status, -1 if
// it is still running. Unlike wait it may be called from any goroutine.
func (p *process) waitCode(d time.Duration) int {
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		return -1
	}
}

// waitStderr waits up to d until p's stderr contains want.
func (p *process) waitStderr(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("kubelease stderr: got %q after %s, want it to contain %q", p.stderr.String(), d, want)
		}
		time.Sleep(10 * time.Millisecond) // polling output, bounded by the deadline
	}
}

// logCMD is a CMD script that appends "start $KUBELEASE_HOLDER" and
// "stop $KUBELEASE_HOLDER" lines to log around a sleep of secs.
func logCMD(t *testing.T, log, secs string) string {
	return script(t, `echo "start $KUBELEASE_HOLDER" >> `+log+`
sleep `+secs+`
echo "stop $KUBELEASE_HOLDER" >> `+log)
}

// overlap reads a log of start/stop lines and returns the most CMDs that
// ran at once and how many stopped.
func overlap(t *testing.T, log string) (most, stopped int) {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	running := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		verb, id, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "start":
			running[id] = true
			most = max(most, len(running))
		case "stop":
			if !running[id] {
				t.Errorf("log %s: %q stopped without starting", log, id)
			}
			delete(running, id)
			stopped++
		}
	}
	return most, stopped
}

func TestProcessesNeverRunCMDAtOnce(t *testing.T) {
	_, kc := newTestServer(t)
	log := filepath.Join(t.TempDir(), "log")
	cmd := logCMD(t, log, "0.2")
	const runners, rounds = 2, 3
	var wg sync.WaitGroup
	codes := make(chan int, runners*rounds)
	for i := range runners {
		wg.Go(func() {
			for r := range rounds {
				p := start(t, "run", "mutex", "--kubeconfig", kc, "--id", fmt.Sprintf("r%d-%d", i, r), "--", cmd)
				codes <- p.waitCode(30 * time.Second)
			}
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 0 {
			t.Errorf("exit status: got %d, want 0 (-1: still running after 30s)", c)
		}
	}
	most, stopped := overlap(t, log)
	if most != 1 || stopped != runners*rounds {
		t.Errorf("CMDs: got %d at once and %d run, want 1 at once and %d run", most, stopped, runners*rounds)
	}
}

func TestProcessSemaphoreSlots(t *testing.T) {
	_, kc := newTestServer(t)
	log := filepath.Join(t.TempDir(), "log")
	cmd := logCMD(t, log, "0.5")
	const runners, slots = 5, 3
	var ps []*process
	for i := range runners {
		ps = append(ps, start(t, "run", "builds", "--slots", strconv.Itoa(slots), "--kubeconfig", kc, "--id", fmt.Sprintf("r%d", i), "--", cmd))
	}
	for _, p := range ps {
		if c := p.wait(t, 30*time.Second); c != 0 {
			t.Errorf("exit status: got %d, want 0 (stderr %q)", c, p.stderr.String())
		}
	}
	most, stopped := overlap(t, log)
	if most > slots || stopped != runners {
		t.Errorf("CMDs: got %d at once and %d run, want at most %d at once and %d run", most, stopped, slots, runners)
	}
	t.Logf("%d of %d slots used at once", most, slots)
}

func TestProcessSIGTERMReachesCMDThenPeerStarts(t *testing.T) {
	_, kc := newTestServer(t)
	log := filepath.Join(t.TempDir(), "log")
	a := start(t, "run", "handoff", "--kubeconfig", kc, "--id", "a", "--", script(t, `trap 'echo "term a" >> `+log+`; sleep 0.2; echo "stop a $(date +%s%N)" >> `+log+`; exit 0' TERM
echo "start a" >> `+log+`
while :; do sleep 0.05; done`))
	waitForFile(t, log, "start a", 10*time.Second)
	b := start(t, "run", "handoff", "--kubeconfig", kc, "--id", "b", "--", script(t, `echo "start b $(date +%s%N)" >> `+log))
	b.waitStderr(t, "default/handoff is held by a", 10*time.Second)

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if c := a.wait(t, 10*time.Second); c != 0 {
		t.Errorf("kubelease a: exit status got %d, want 0, CMD's (stderr %q)", c, a.stderr.String())
	}
	if c := b.wait(t, 10*time.Second); c != 0 {
		t.Errorf("kubelease b: exit status got %d, want 0 (stderr %q)", c, b.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(waitForFile(t, log, "start b", time.Second)), "\n")
	if len(lines) != 4 || lines[1] != "term a" || !strings.HasPrefix(lines[2], "stop a ") || !strings.HasPrefix(lines[3], "start b ") {
		t.Fatalf("log: got %q, want start a, term a, stop a, start b", lines)
	}
	stopA, _ := strconv.ParseInt(strings.Fields(lines[2])[2], 10, 64)
	startB, _ := strconv.ParseInt(strings.Fields(lines[3])[2], 10, 64)
	gap := time.Duration(startB - stopA)
	t.Logf("b's CMD started %s after a's CMD wrote its last line", gap)
	if gap > time.Second {
		t.Errorf("b started %s after a's CMD stopped, want under 1s (a releases once its CMD exits)", gap)
	}
}

func TestProcessSIGKILLOfHolder(t *testing.T) {
	_, kc := newTestServer(t)
	dir := t.TempDir()
	pidFile, log := filepath.Join(dir, "pid"), filepath.Join(dir, "log")
	const ttl = 2 * time.Second
	a := start(t, "run", "crash", "--kubeconfig", kc, "--ttl", ttl.String(), "--id", "a", "--", script(t, `echo $$ > `+pidFile+`
while :; do sleep 0.05; done`))
	waitForFile(t, pidFile, "\n", 10*time.Second)
	b := start(t, "run", "crash", "--kubeconfig", kc, "--ttl", ttl.String(), "--id", "b", "--", script(t, `echo "start b" >> `+log))
	b.waitStderr(t, "default/crash is held by a", 10*time.Second)

	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, log, "start b", ttl+2*time.Second)
	t.Logf("b's CMD started %s after kubelease a was killed", time.Since(killed).Round(time.Millisecond))

	if runtime.GOOS != "linux" {
		return // only Linux kills CMD with its parent (dieWithParent)
	}
	b2, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b2)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("a's CMD (pid %d) still running 5s after kubelease a was killed", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling the process, bounded by the deadline
	}
}

func TestProcessExitStatus(t *testing.T) {
	_, kc := newTestServer(t)
	tests := []struct {
		name string
		cmd  []string
		want int
	}{
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 137},
		{"not found", []string{"no-such-command-kubelease"}, 127},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, append([]string{"run", "status", "--kubeconfig", kc, "--"}, tc.cmd...)...)
			if c := p.wait(t, 10*time.Second); c != tc.want {
				t.Errorf("exit status: got %d, want %d (stderr %q)", c, tc.want, p.stderr.String())
			}
		})
	}
}

func TestProcessNoWait(t *testing.T) {
	srv, kc := newTestServer(t)
	holdLease(t, srv, "held")
	p := start(t, "run", "held", "--no-wait", "--kubeconfig", kc, "--", "true")
	if c := p.wait(t, 10*time.Second); c != 75 {
		t.Errorf("exit status: got %d, want 75 (stderr %q)", c, p.stderr.String())
	}
}
