package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// TestHandoff: "handoff --to" moves the Lease from one "kubelease run" to
// another waiting one; the first one's CMD gets --signal and has exited
// before the second one's starts.
func TestHandoff(t *testing.T) {
	srv, kc := newTestServer(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	a := script(t, `echo "a start" >> `+log+`; trap 'echo "a term" >> `+log+`; exit 0' TERM; while :; do sleep 0.05; done`)
	b := script(t, `echo "b start" >> `+log)
	aDone := make(chan result, 1)
	go func() { aDone <- kubelease("run", "job", "--kubeconfig", kc, "--id", "pod-a", "--", a) }()
	waitForFile(t, log, "a start", waitFor)
	bDone := make(chan result, 1)
	go func() { bDone <- kubelease("run", "job", "--kubeconfig", kc, "--id", "pod-b", "--", b) }()
	if err := srv.AwaitWatchers(context.Background(), 2); err != nil { // a's holder watch, b's standby
		t.Fatal(err)
	}

	r := kubelease("handoff", "job", "--to", "pod-b", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "handed default/job from pod-a to pod-b in") {
		t.Fatalf("handoff: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	ra, rb := recvResult(t, aDone), recvResult(t, bDone)
	if ra.code != 0 || !strings.Contains(ra.stderr, "handing default/job off to pod-b; sending SIGTERM") {
		t.Errorf("a: exit %d (want CMD's 0), stderr %q", ra.code, ra.stderr)
	}
	if rb.code != 0 {
		t.Errorf("b: exit %d, stderr %q", rb.code, rb.stderr)
	}
	got := waitForFile(t, log, "b start", waitFor)
	if want := "a start\na term\nb start\n"; got != want {
		t.Errorf("log: got %q, want %q (a's CMD stopped before b's started)", got, want)
	}
}

func recvResult(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("kubelease did not exit within %s", waitFor)
		return result{}
	}
}

// waitFor bounds the waits of these tests.
const waitFor = 10 * time.Second

func TestHandoffErrors(t *testing.T) {
	srv, kc := newTestServer(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --to", []string{"handoff", "job"}, "--to is required"},
		{"no lease", []string{"handoff", "job", "--to", "pod-b"}, "no Lease default/job: nothing to hand off"},
		{"bad timeout", []string{"handoff", "job", "--to", "b", "--timeout", "0s"}, "--timeout 0s: must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubelease(append(tc.args, "--kubeconfig", kc)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	// A holder that is not a kubelease (it never steps down): the wait
	// gives up and says who holds it.
	holdLease(t, srv, "held")
	r := kubelease("handoff", "held", "--to", "pod-b", "--timeout", "300ms", "--kubeconfig", kc)
	if r.code != 1 || !strings.Contains(r.stderr, "but after 300ms it is held by") {
		t.Errorf("exit %d, stderr %q; want 1 and the holder", r.code, r.stderr)
	}
	r = kubelease("handoff", "held", "--to", "other", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "already held by other") {
		t.Errorf("to the holder: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = kubelease("handoff", "held", "--to", "pod-c", "--no-wait", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "asked other to hand default/held to pod-c") {
		t.Errorf("--no-wait: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = kubelease("status", "held", "-o", "json", "--kubeconfig", kc)
	var v leaseView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.PreferredHolder != "pod-c" {
		t.Errorf("status after a handoff request: %q (%v), want preferredHolder pod-c", r.stdout, err)
	}
}

func TestStatusShowsToken(t *testing.T) {
	srv, kc := newTestServer(t)
	l := holdLease(t, srv, "held")
	r := kubelease("status", "held", "--kubeconfig", kc)
	if !strings.Contains(r.stdout, "<not yet renewed>") {
		t.Errorf("before the first renewal: %q", r.stdout)
	}
	tok, _ := l.Token()
	if err := srv.Edit("default", "held", func(o *leasetest.Lease) { o.Annotations[lease.TokenAnnotation] = tok.String() }); err != nil {
		t.Fatal(err)
	}
	r = kubelease("status", "held", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, tok.String()) {
		t.Errorf("status: exit %d, stdout %q; want the token %s", r.code, r.stdout, tok)
	}
}

func TestList(t *testing.T) {
	srv, kc := newTestServer(t)
	r := kubelease("list", "--kubeconfig", kc)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No Leases found in namespace default") {
		t.Errorf("empty: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	holdLease(t, srv, "b-job")
	holdLease(t, srv, "a-job")
	r = kubelease("list", "--kubeconfig", kc)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "a-job") || !strings.HasPrefix(lines[2], "b-job") {
		t.Errorf("list: exit %d, stdout\n%s", r.code, r.stdout)
	}
	r = kubelease("list", "-o", "json", "--kubeconfig", kc)
	var vs []leaseView
	if err := json.Unmarshal([]byte(r.stdout), &vs); err != nil || len(vs) != 2 || !vs[0].Held || vs[0].Holder != "other" {
		t.Errorf("list -o json: %q (%v)", r.stdout, err)
	}
	r = kubelease("list", "-l", "app in (", "--kubeconfig", kc)
	if r.code != 1 || !strings.Contains(r.stderr, `labelSelector "app in ("`) {
		t.Errorf("bad selector: exit %d, stderr %q", r.code, r.stderr)
	}
	r = kubelease("list", "-l", "app=none", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stderr, "No Leases found") {
		t.Errorf("selector matching none: exit %d, stderr %q", r.code, r.stderr)
	}
	srv.AddUser("nobody")
	r = kubelease("list", "--kubeconfig", writeKubeconfig(t, srv.URL, "nobody"))
	if r.code != 1 || !strings.Contains(r.stderr, `cannot list leases.coordination.k8s.io`) {
		t.Errorf("RBAC: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestReleaseForce(t *testing.T) {
	srv, kc := newTestServer(t)
	r := kubelease("release", "job", "--kubeconfig", kc)
	if r.code != 1 || !strings.Contains(r.stderr, "pass --force") {
		t.Errorf("without --force: exit %d, stderr %q", r.code, r.stderr)
	}
	r = kubelease("release", "job", "--force", "--yes", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "does not exist: nothing to release") {
		t.Errorf("absent: exit %d, stdout %q", r.code, r.stdout)
	}
	holdLease(t, srv, "job")
	r = kubeleaseIn("n\n", "release", "job", "--force", "--kubeconfig", kc)
	if r.code != 1 || !strings.Contains(r.stdout, "is held by other (expires in") || !strings.Contains(r.stderr, "not confirmed") {
		t.Errorf("answered no: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, ok := srv.Get("default", "job"); !ok {
		t.Fatal("deleted without confirmation")
	}
	r = kubeleaseIn("y\n", "release", "job", "--force", "--kubeconfig", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "Lease default/job deleted") {
		t.Errorf("answered yes: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, ok := srv.Get("default", "job"); ok {
		t.Error("still there after release --force")
	}
}

// kubeleaseIn runs args in process with stdin.
func kubeleaseIn(stdin string, args ...string) result {
	var out, errb syncBuffer
	code := execute(args, strings.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}
