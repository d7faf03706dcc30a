package e2e

import (
	"bufio"
	"context"
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

// The CLI tests (cli_test.go) run the kubelease command of the module
// cmd/kubelease as separate OS processes against the shared kube-apiserver.
// The binary is built once per test binary into the cluster's temp dir
// (removed by TestMain); this module does not import cmd/kubelease.
//
// Every CMD is a /bin/sh script that says what it does twice:
//
//   - on its stdout, which kubelease passes through to the pipe that proc
//     reads: lines such as "cmd-start", stamped with the test's monotonic
//     clock when read (the timings);
//   - appended to a log file shared by all the CMDs of a test (one write(2)
//     with O_APPEND per line, so the file's order is the order in which
//     the lines were written; the orderings: overlaps, slots, tokens).
const (
	cliTTL = 4 * time.Second
	// cliLogEnv names the shared log file in the CMDs' environment
	// (kubelease passes its own environment on to CMD).
	cliLogEnv = "KUBELEASE_E2E_CLI_LOG"
	// cliExitWait bounds the wait for a kubelease that should exit soon.
	cliExitWait = 30 * time.Second
	// cliHeldWait bounds the wait for a CMD to start, or for a waiting
	// kubelease to say who holds the Lease.
	cliHeldWait = 30 * time.Second
)

// cliLogStart is the line a CMD appends to the log file when it starts: the
// holder, the fencing token, and the slot ("-" without --slots).
const cliLogStart = `echo "start $KUBELEASE_HOLDER $KUBELEASE_TOKEN ${KUBELEASE_SLOT:--}" >> "$` + cliLogEnv + `"`

// cliLogEnd is the line a CMD appends to the log file when it ends.
const cliLogEnd = `echo "end $KUBELEASE_HOLDER" >> "$` + cliLogEnv + `"`

var cliBuild struct {
	once sync.Once
	path string
	err  error
}

// kubeleaseBinary builds cmd/kubelease once per test binary and returns its
// path.
func kubeleaseBinary(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	cliBuild.once.Do(func() {
		root, err := cluster.RepoRoot()
		if err != nil {
			cliBuild.err = err
			return
		}
		dir := filepath.Join(c.Dir, "kubelease-cli")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cliBuild.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bin := filepath.Join(dir, "kubelease")
		begin := time.Now()
		cmd := exec.CommandContext(ctx, cliGoTool(), "build", "-o", bin, ".")
		cmd.Dir = filepath.Join(root, "cmd", "kubelease")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliBuild.err = fmt.Errorf("go build -o %s . in %s: %v\n%s", bin, cmd.Dir, err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: built kubelease in %v\n", time.Since(begin).Round(time.Millisecond))
		cliBuild.path = bin
	})
	if cliBuild.err != nil {
		t.Fatal(cliBuild.err)
	}
	return cliBuild.path
}

// cliGoTool is the go command, found as package cluster finds it: $GOROOT's
// if GOROOT is set, else the one on PATH.
func cliGoTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return goCmd()
}

// cliRig is one Lease (or semaphore) that kubelease processes contend for.
type cliRig struct {
	t          *testing.T
	c          *cluster.Cluster
	bin        string
	kubeconfig string
	name       string
	log        string // the CMDs' shared log file
}

func newCLIRig(t *testing.T) *cliRig {
	t.Helper()
	c := needCluster(t)
	dir := t.TempDir()
	r := &cliRig{t: t, c: c, bin: kubeleaseBinary(t, c), name: leaseName(t),
		kubeconfig: filepath.Join(dir, "kubeconfig"), log: filepath.Join(dir, "cmd.log")}
	if err := c.Kubeconfig(r.kubeconfig, cluster.AdminToken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// After the processes are killed (their cleanups run first): drop
		// the Lease and any slot Leases, if kubelease left them.
		names := []string{r.name}
		for i := range 8 {
			names = append(names, fmt.Sprintf("%s-slot-%d", r.name, i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range names {
			code, body, err := c.Do(ctx, cluster.AdminToken, http.MethodDelete, leasesPath+n, nil)
			if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
				t.Logf("deleting Lease %s: %d %v %.200s", n, code, err, body)
			}
		}
	})
	return r
}

// run starts `kubelease run NAME --kubeconfig K -n default --ttl 4s --id id
// [flags] -- sh -c script` as a process of its own (killed, with its
// process group, at the end of the test).
func (r *cliRig) run(id, script string, flags ...string) *proc {
	r.t.Helper()
	return r.runArgv(id, []string{"/bin/sh", "-c", script}, flags...)
}

// runArgv is run with CMD argv.
func (r *cliRig) runArgv(id string, argv []string, flags ...string) *proc {
	r.t.Helper()
	args := []string{"run", r.name, "--kubeconfig", r.kubeconfig, "-n", cluster.Namespace,
		"--ttl", cliTTL.String(), "--id", id}
	args = append(args, flags...)
	args = append(args, "--")
	return r.start(id, append(args, argv...)...)
}

// start starts the kubelease binary with args.
func (r *cliRig) start(name string, args ...string) *proc {
	r.t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), cliLogEnv+"="+r.log)
	return startProc(r.t, name, cmd)
}

// exitCode is the shell's view of how a process ended (cmd.Wait's error):
// its exit status, 128+N if killed by signal N, -1 if it did not run.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	ee, ok := errors.AsType[*exec.ExitError](err)
	if !ok {
		return -1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// mustExit waits up to d for p to exit and returns its exit status.
func mustExit(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	err, ok := p.waitExit(d)
	if !ok {
		t.Fatalf("%s: still running after %s; output:\n%s", p.name, d, p.output())
	}
	return exitCode(err)
}

// mustLine waits up to d for a line of p containing substr (from line
// index from on) and returns it.
func mustLine(t *testing.T, p *proc, from int, substr string, d time.Duration) line {
	t.Helper()
	l, _, ok := p.waitFor(from, substr, d)
	if !ok {
		t.Fatalf("%s: no line containing %q within %s; output:\n%s", p.name, substr, d, p.output())
	}
	return l
}

// cliEvent is one line of the CMDs' shared log file.
type cliEvent struct {
	start  bool
	holder string
	token  lease.Token // of a start
	slot   string      // of a start: KUBELEASE_SLOT, "-" if unset
}

// readCLILog parses the shared log file, in the order the lines were
// written.
func (r *cliRig) readCLILog() []cliEvent {
	r.t.Helper()
	f, err := os.Open(r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var out []cliEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 4 && fs[0] == "start":
			tok, err := lease.ParseToken(fs[2])
			if err != nil {
				r.t.Errorf("log line %q: %v", sc.Text(), err)
			}
			out = append(out, cliEvent{start: true, holder: fs[1], token: tok, slot: fs[3]})
		case len(fs) == 2 && fs[0] == "end":
			out = append(out, cliEvent{holder: fs[1]})
		default:
			r.t.Errorf("log %s: unexpected line %q", r.log, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// cliConcurrency replays the log: the most CMDs that ran at once, how many
// started and ended, and each CMD that ended without having started (or
// started twice) is an error. onStart sees the CMDs running just after each
// start, the new one included.
func (r *cliRig) cliConcurrency(events []cliEvent, onStart func(running map[string]cliEvent)) (most, started, ended int) {
	r.t.Helper()
	running := map[string]cliEvent{}
	for _, e := range events {
		if e.start {
			if _, dup := running[e.holder]; dup {
				r.t.Errorf("log: %s started twice", e.holder)
			}
			running[e.holder] = e
			started++
			most = max(most, len(running))
			if onStart != nil {
				onStart(running)
			}
			continue
		}
		if _, ok := running[e.holder]; !ok {
			r.t.Errorf("log: %s ended without having started", e.holder)
		}
		delete(running, e.holder)
		ended++
	}
	return most, started, ended
}
