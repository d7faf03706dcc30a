package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// line is one output line of a process and when the test read it.
type line struct {
	text string
	at   time.Time
}

// proc is a child process whose merged stdout and stderr are collected.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	lines  []line
	change chan struct{} // closed and replaced on every new line and at exit
	exited bool
	err    error // cmd.Wait's
}

// startProc starts cmd (see cluster.StartProcess: it dies with the test
// binary) and kills its process group at the end of the test.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	p := &proc{t: t, name: name, cmd: cmd, change: make(chan struct{})}
	if err := cluster.StartProcess(cmd); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, line{sc.Text(), time.Now()})
			close(p.change)
			p.change = make(chan struct{})
			p.mu.Unlock()
		}
		r.Close()
	}()
	go func() {
		<-done // all output read (the pipe closes when the process and its children exit)
		err := cmd.Wait()
		p.mu.Lock()
		p.exited, p.err = true, err
		close(p.change)
		p.change = make(chan struct{})
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		p.waitExit(10 * time.Second)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.output())
		}
	})
	return p
}

// kill sends sig to the process group.
func (p *proc) kill(sig syscall.Signal) {
	if p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// signal sends sig to the process itself.
func (p *proc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("%s: signal %v: %v", p.name, sig, err)
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintf(&b, "  [%s] %s\n", l.at.Format("15:04:05.000"), l.text)
	}
	if p.exited {
		fmt.Fprintf(&b, "  (exited: %v)\n", p.err)
	}
	return b.String()
}

// next returns the number of lines read so far: a cursor for waitFor.
func (p *proc) next() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitFor waits up to d for a line at index >= from that contains substr.
// It returns the line and its index; ok is false on timeout or exit.
func (p *proc) waitFor(from int, substr string, d time.Duration) (line, int, bool) {
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i].text, substr) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i, true
			}
		}
		from = len(p.lines)
		exited, change := p.exited, p.change
		p.mu.Unlock()
		if exited {
			return line{}, -1, false
		}
		select {
		case <-change:
		case <-deadline:
			return line{}, -1, false
		}
	}
}

// linesSince returns the lines at index >= from.
func (p *proc) linesSince(from int) []line {
	p.mu.Lock()
	defer p.mu.Unlock()
	if from > len(p.lines) {
		return nil
	}
	return append([]line(nil), p.lines[from:]...)
}

// waitExit waits up to d for the process to exit and returns cmd.Wait's
// error; ok is false on timeout.
func (p *proc) waitExit(d time.Duration) (err error, ok bool) {
	deadline := time.After(d)
	for {
		p.mu.Lock()
		exited, err, change := p.exited, p.err, p.change
		p.mu.Unlock()
		if exited {
			return err, true
		}
		select {
		case <-change:
		case <-deadline:
			return nil, false
		}
	}
}

// buildElection builds examples/election of the root module into dir.
func buildElection(t *testing.T, dir string) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "election")
	cmd := exec.Command(goCmd(), "build", "-o", bin, "./examples/election")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/election: %v\n%s", err, out)
	}
	return bin
}

func goCmd() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// deleteLease removes a Lease as admin (404 is fine).
func deleteLease(t *testing.T, c *cluster.Cluster, name string) {
	t.Helper()
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodDelete, leasesPath+name, nil)
	if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
		t.Fatalf("DELETE lease %s: %d %v %s", name, code, err, body)
	}
}

// leaseExists reports whether the Lease is stored.
func leaseExists(t *testing.T, c *cluster.Cluster, name string) bool {
	t.Helper()
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodGet, leasesPath+name, nil)
	if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
		t.Fatalf("GET lease %s: %d %v %s", name, code, err, body)
	}
	return code == http.StatusOK
}

// TestSeparateProcesses runs examples/election replicas as OS processes
// contending for one Lease on the real server:
//
//   - holder A leads; SIGKILL (no Release); replica B, started after, takes
//     over once the lease has expired, not before;
//   - B is frozen with SIGSTOP; replica C takes over once B's lease has
//     expired; on SIGCONT, B says it lost the lease before it says anything
//     about leading, and does not lead again while C holds;
//   - SIGTERM makes C release, and the standby B takes over without waiting
//     for the TTL; SIGTERM makes B release; the Lease is gone; both exit 0.
func TestSeparateProcesses(t *testing.T) {
	c := needCluster(t)
	dir := t.TempDir()
	bin := buildElection(t, dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := c.Kubeconfig(kubeconfig, cluster.AdminToken); err != nil {
		t.Fatal(err)
	}
	const (
		ttl          = 3 * time.Second
		renewEvery   = ttl / 3 // the library's default RenewalInterval
		contendEvery = 2 * time.Second
		skew         = lease.DefaultMaxClockSkew
		slack        = 3 * time.Second // process start, scheduling on a busy machine
	)
	name := leaseName(t)
	t.Cleanup(func() { deleteLease(t, c, name) })
	replica := func(id string) *proc {
		cmd := exec.Command(bin, "-kubeconfig", kubeconfig, "-name", name, "-id", id, "-ttl", ttl.String(), "-duration", "5m")
		return startProc(t, id, cmd)
	}

	// A leads.
	a := replica("a")
	if _, _, ok := a.waitFor(0, "leading as a-", 20*time.Second); !ok {
		t.Fatalf("replica a did not lead:\n%s", a.output())
	}

	// SIGKILL A: no Release. B takes over once the lease has expired.
	a.kill(syscall.SIGKILL)
	killed := time.Now()
	if _, ok := a.waitExit(10 * time.Second); !ok {
		t.Fatal("replica a did not die from SIGKILL")
	}
	b := replica("b")
	bLead, _, ok := b.waitFor(0, "leading as b-", ttl+skew+contendEvery+slack+5*time.Second)
	if !ok {
		t.Fatalf("replica b did not take over after a was killed:\n%s", b.output())
	}
	after := bLead.at.Sub(killed)
	t.Logf("b took over %v after a was SIGKILLed (TTL %v, skew %v, attempt every %v)", after.Round(time.Millisecond), ttl, skew, contendEvery)
	if earliest := ttl - renewEvery - ttl/50; after < earliest {
		t.Errorf("b led %v after a was killed: before a's deadline could have passed (%v)", after, earliest)
	}
	if limit := ttl + skew + contendEvery + slack; after > limit {
		t.Errorf("b took %v to take over, want at most TTL+skew+attempt interval+slack = %v", after, limit)
	}

	// Freeze B; C takes over; thaw B: B must notice it lost, and not lead.
	b.signal(syscall.SIGSTOP)
	t.Cleanup(func() { b.kill(syscall.SIGCONT) }) // in case the test stops early
	frozen := time.Now()
	cc := replica("c")
	cLead, _, ok := cc.waitFor(0, "leading as c-", ttl+skew+contendEvery+slack+5*time.Second)
	if !ok {
		t.Fatalf("replica c did not take over from the frozen b:\n%s", cc.output())
	}
	t.Logf("c took over %v after b was frozen", cLead.at.Sub(frozen).Round(time.Millisecond))
	time.Sleep(time.Second) // b stays frozen a little longer past c's takeover
	bFrom := b.next()
	cFrom := cc.next()
	thawed := time.Now()
	b.signal(syscall.SIGCONT)
	lostLine, lostAt, ok := b.waitFor(bFrom, "LOST the lease", 10*time.Second)
	if !ok {
		t.Fatalf("b did not report the loss within 10s of SIGCONT:\n%s", b.output())
	}
	t.Logf("b reported %v after SIGCONT: %s", lostLine.at.Sub(thawed).Round(time.Millisecond), lostLine.text)
	for _, l := range b.linesSince(bFrom)[:lostAt-bFrom] {
		if strings.Contains(l.text, "leading as") {
			t.Errorf("b claimed to lead after SIGCONT before reporting the loss: %s", l.text)
		}
	}
	time.Sleep(contendEvery + time.Second) // b contends at least once more
	for _, l := range b.linesSince(bFrom) {
		if strings.Contains(l.text, "leading as") {
			t.Errorf("b led again while c holds the lease: %s", l.text)
		}
	}
	for _, l := range cc.linesSince(cFrom) {
		if strings.Contains(l.text, "LOST") {
			t.Errorf("c lost the lease after b was thawed: %s", l.text)
		}
	}

	// SIGTERM c: it releases, and the standby b takes over at its next
	// attempt without waiting for the TTL. SIGTERM b: it releases too, and
	// the Lease is gone.
	bFrom = b.next()
	cc.signal(syscall.SIGTERM)
	released := time.Now()
	if err, ok := cc.waitExit(15 * time.Second); !ok || err != nil {
		t.Errorf("c after SIGTERM: exited %v, err %v; want exit 0\n%s", ok, err, cc.output())
	}
	if _, _, ok := cc.waitFor(cFrom, "released the lease", 0); !ok {
		t.Errorf("c did not say it released the lease:\n%s", cc.output())
	}
	bLead, _, ok = b.waitFor(bFrom, "leading as b-", contendEvery+slack)
	if !ok {
		t.Fatalf("b did not take over after c released:\n%s", b.output())
	}
	t.Logf("b took over %v after c was sent SIGTERM (released, no TTL wait)", bLead.at.Sub(released).Round(time.Millisecond))
	b.signal(syscall.SIGTERM)
	if err, ok := b.waitExit(15 * time.Second); !ok || err != nil {
		t.Errorf("b after SIGTERM: exited %v, err %v; want exit 0\n%s", ok, err, b.output())
	}
	if _, _, ok := b.waitFor(bFrom, "released the lease", 0); !ok {
		t.Errorf("b did not say it released the lease:\n%s", b.output())
	}
	if leaseExists(t, c, name) {
		t.Error("the Lease still exists after the last holder released it on SIGTERM")
	}
}

// TestElectionExampleOnce runs the README's real-cluster command once:
// `go run ./examples/election -kubeconfig <file> -duration 3s` leads, then
// releases and exits 0.
func TestElectionExampleOnce(t *testing.T) {
	c := needCluster(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(kubeconfig, cluster.AdminToken); err != nil {
		t.Fatal(err)
	}
	const name = "election-demo" // the example's default Lease
	deleteLease(t, c, name)
	cmd := exec.Command(goCmd(), "run", "./examples/election", "-kubeconfig", kubeconfig, "-duration", "3s")
	cmd.Dir = root
	p := startProc(t, "go run ./examples/election", cmd)
	err, ok := p.waitExit(5 * time.Minute) // includes compiling
	if !ok {
		t.Fatalf("go run ./examples/election did not exit:\n%s", p.output())
	}
	var exitErr *exec.ExitError
	if err != nil {
		if errors.As(err, &exitErr) {
			t.Fatalf("go run ./examples/election exited %d:\n%s", exitErr.ExitCode(), p.output())
		}
		t.Fatalf("go run ./examples/election: %v\n%s", err, p.output())
	}
	if _, _, ok := p.waitFor(0, "leading as", 0); !ok {
		t.Errorf("the example never led:\n%s", p.output())
	}
	if leaseExists(t, c, name) {
		t.Error("the example's Lease still exists after it exited: no Release?")
	}
	t.Logf("output:\n%s", p.output())
}

// childOutput returns what a child program (the test binary re-executed)
// prints with: say writes one line to stdout at a time, for the parent to
// read; fail writes err to stderr after who and returns exit status 2.
func childOutput(who string) (say func(format string, args ...any), fail func(err error) int) {
	var mu sync.Mutex // one line at a time
	say = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	fail = func(err error) int {
		fmt.Fprintln(os.Stderr, who+":", err)
		return 2
	}
	return say, fail
}
