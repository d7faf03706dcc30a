package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease/leasetest"
)

func TestRunGivesCMDTheLeaseAndReleasesIt(t *testing.T) {
	srv, kc := newTestServer(t)
	out := filepath.Join(t.TempDir(), "env")
	cmd := script(t, `echo "$KUBELEASE_NAME|$KUBELEASE_HOLDER|$KUBELEASE_TOKEN" > `+out)
	r := kubelease("run", "job", "--kubeconfig", kc, "--id", "me-1", "--", cmd)
	if r.code != 0 {
		t.Fatalf("exit status: got %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(string(b)), "|")
	if len(parts) != 3 || parts[0] != "job" || parts[1] != "me-1" || !strings.HasSuffix(parts[2], "/0") {
		t.Errorf("CMD's environment: got %q, want job|me-1|<rv>/0", b)
	}
	if _, ok := srv.Get("default", "job"); ok {
		t.Errorf("Lease default/job: still there after CMD exited, want released")
	}
}

func TestRunExitStatus(t *testing.T) {
	_, kc := newTestServer(t)
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  []string
		want int
	}{
		{"success", []string{"true"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 137},
		{"not found", []string{"no-such-command-kubelease"}, 127},
		{"missing path", []string{"/no/such/file"}, 127},
		{"not executable", []string{notExec}, 126},
		{"a directory", []string{t.TempDir()}, 126},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubelease(append([]string{"run", "st", "--kubeconfig", kc, "--"}, tc.cmd...)...)
			if r.code != tc.want {
				t.Errorf("exit status: got %d, want %d (stderr %q)", r.code, tc.want, r.stderr)
			}
		})
	}
}

func TestRunWhenHeld(t *testing.T) {
	srv, kc := newTestServer(t)
	holdLease(t, srv, "busy")
	tests := []struct {
		name     string
		args     []string
		want     int
		inStderr string
	}{
		{"no-wait", []string{"--no-wait"}, 75, "default/busy is held by other (expires in"},
		{"no-wait with its own code", []string{"--no-wait", "--conflict-exit-code", "9"}, 9, "not waiting (--no-wait)"},
		{"timeout", []string{"--timeout", "300ms"}, 75, "timed out after 300ms waiting for default/busy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran := filepath.Join(t.TempDir(), "ran")
			args := append([]string{"run", "busy", "--kubeconfig", kc}, tc.args...)
			r := kubelease(append(args, "--", "touch", ran)...)
			if r.code != tc.want {
				t.Errorf("exit status: got %d, want %d (stderr %q)", r.code, tc.want, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.inStderr) {
				t.Errorf("stderr: got %q, want it to contain %q", r.stderr, tc.inStderr)
			}
			if _, err := os.Stat(ran); err == nil {
				t.Errorf("CMD ran while another process held the lease")
			}
		})
	}
}

func TestRunErrorsNameWhatAndTheFix(t *testing.T) {
	srv, kc := newTestServer(t)
	srv.AddUser("reader", "get")
	readerKC := writeKubeconfig(t, srv.URL, "reader")
	tests := []struct {
		name     string
		args     []string
		inStderr []string
	}{
		{"no kubeconfig", []string{"run", "x", "--kubeconfig", "/no/such/kubeconfig", "--", "true"},
			[]string{"no cluster configuration", "/no/such/kubeconfig", "pass --kubeconfig"}},
		{"RBAC", []string{"run", "x", "--kubeconfig", readerKC, "--", "true"},
			[]string{`forbidden: cannot create leases.coordination.k8s.io "x" in namespace "default"`, `grant the verb "create"`}},
		{"namespace missing", []string{"run", "x", "--kubeconfig", kc, "-n", "nope", "--", "true"},
			[]string{`namespace "nope" not found`, "kubectl create namespace nope"}},
		{"no dash", []string{"run", "x", "--kubeconfig", kc, "true"},
			[]string{"usage: kubelease run NAME [flags] -- CMD"}},
		{"bad signal", []string{"run", "x", "--kubeconfig", kc, "--signal", "NOPE", "--", "true"},
			[]string{`--signal "NOPE": unknown signal`}},
		{"slots need a label", []string{"run", "a.b", "--slots", "2", "--kubeconfig", kc, "--", "true"},
			[]string{"Name", "a.b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubelease(tc.args...)
			if r.code != 1 {
				t.Errorf("exit status: got %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			if n := strings.Count(r.stderr, "\n"); n != 1 {
				t.Errorf("stderr: got %d lines (%q), want 1", n, r.stderr)
			}
			for _, want := range tc.inStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr: got %q, want it to contain %q", r.stderr, want)
				}
			}
		})
	}
}

func TestRunSignalsCMDOnLoss(t *testing.T) {
	tests := []struct {
		name     string
		body     string // the CMD script; $1 is the file it writes
		wantCode int
		wantFile string
	}{
		{"CMD stops on SIGTERM", `trap 'echo term >> "$1"; exit 0' TERM
echo started >> "$1"
while :; do sleep 0.05; done`, 0, "started\nterm\n"},
		{"CMD ignores SIGTERM", `trap '' TERM
echo started >> "$1"
while :; do sleep 0.05; done`, 137, "started\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, kc := newTestServer(t)
			out := filepath.Join(t.TempDir(), "out")
			done := make(chan result, 1)
			go func() {
				done <- kubelease("run", "lose", "--kubeconfig", kc, "--ttl", "2s", "--kill-after", "200ms", "--", script(t, tc.body), out)
			}()
			waitForFile(t, out, "started", 10*time.Second)
			if err := srv.Delete("default", "lose"); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("kubelease did not return within 10s of the Lease being deleted")
			}
			if r.code != tc.wantCode {
				t.Errorf("exit status: got %d, want %d (stderr %q)", r.code, tc.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, "kubelease: lost default/lose") {
				t.Errorf("stderr: got %q, want it to report the loss (stdout %q)", r.stderr, r.stdout)
			}
			if b, _ := os.ReadFile(out); string(b) != tc.wantFile {
				t.Errorf("CMD wrote %q, want %q", b, tc.wantFile)
			}
		})
	}
}

func TestRunHelpShowsEveryFlag(t *testing.T) {
	r := kubelease("run", "--help")
	if r.code != 0 {
		t.Fatalf("exit status: got %d, want 0", r.code)
	}
	for _, flag := range []string{"--kubeconfig", "--context", "-n, --namespace", "--id", "--ttl", "--timeout",
		"--no-wait", "--conflict-exit-code", "--signal", "--kill-after", "--slots", "KUBELEASE_TOKEN", "-- CMD [ARGS...]"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("run --help: missing %q in\n%s", flag, r.stdout)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"SIGTERM", "terminated", false},
		{"term", "terminated", false},
		{"INT", "interrupt", false},
		{"9", "killed", false},
		{"0", "", true},
		{"BOGUS", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			sig, err := parseSignal(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseSignal(%q): got error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && sig.String() != tc.want {
				t.Errorf("parseSignal(%q): got %v, want %s", tc.in, sig, tc.want)
			}
		})
	}
}

func TestRunKubeconfigContextAndNamespace(t *testing.T) {
	srv, _ := newTestServer(t)
	srv.AddNamespace("team")
	srv.AddNamespace("flag")
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ` + srv.URL + `
- name: nowhere
  cluster:
    server: http://127.0.0.1:1
users:
- name: tester
  user:
    token: ` + testToken + `
contexts:
- name: broken
  context: {cluster: nowhere, user: tester}
- name: team
  context: {cluster: fake, user: tester, namespace: team}
current-context: broken
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		env    string // $KUBECONFIG
		wantNS string
	}{
		{"--context picks the cluster and its namespace", []string{"--kubeconfig", path, "--context", "team"}, "", "team"},
		{"-n wins over the context's namespace", []string{"--kubeconfig", path, "--context", "team", "-n", "flag"}, "", "flag"},
		{"--context alone reads $KUBECONFIG", []string{"--context", "team"}, path, "team"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			seen := len(srv.Requests())
			args := append([]string{"run", "ctx"}, tc.args...)
			r := kubelease(append(args, "--", "true")...)
			if r.code != 0 {
				t.Fatalf("exit status: got %d, want 0 (stderr %q)", r.code, r.stderr)
			}
			reqs := srv.Requests()[seen:]
			if len(reqs) == 0 {
				t.Fatal("requests: got none, want some")
			}
			for _, req := range reqs {
				if req.Namespace != tc.wantNS {
					t.Errorf("request %s %s/%s: got namespace %q, want %q", req.Verb, req.Namespace, req.Name, req.Namespace, tc.wantNS)
				}
			}
		})
	}
}

func TestRunRetriesServerErrors(t *testing.T) {
	srv, kc := newTestServer(t)
	srv.InjectFault(leasetest.Fault{Verb: "get", Status: 503, Times: 2})
	r := kubelease("run", "flaky", "--kubeconfig", kc, "--", "true")
	if r.code != 0 {
		t.Fatalf("exit status: got %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "(retrying)"); n != 1 {
		t.Errorf("stderr: got %q, want one line saying it retries", r.stderr)
	}
}
