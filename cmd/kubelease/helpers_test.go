package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// testToken is the bearer token the fake API server requires.
const testToken = "kubelease-test-token"

// newTestServer starts a fake API server that requires testToken and
// returns it with a kubeconfig file pointing at it.
func newTestServer(t *testing.T) (*leasetest.Server, string) {
	t.Helper()
	srv := leasetest.NewServerT(t)
	srv.RequireToken(testToken)
	return srv, writeKubeconfig(t, srv.URL, testToken)
}

// writeKubeconfig writes a kubeconfig for server with token and returns
// its path.
func writeKubeconfig(t *testing.T, server, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: %s
users:
- name: tester
  user:
    token: %s
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
current-context: fake
`, server, token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is what one in-process kubelease command did.
type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a buffer that CMD (through exec's copying goroutine) and
// kubelease may write to at once.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kubelease runs the command line args in process.
func kubelease(args ...string) result {
	var out, errb syncBuffer
	code := execute(args, strings.NewReader(""), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// holdLease makes another holder ("other") hold name on srv until the test
// ends.
func holdLease(t *testing.T, srv *leasetest.Server, name string) *lease.KubernetesLease {
	t.Helper()
	cfg := srv.Config()
	cfg.BearerToken = testToken
	l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Owner: "other", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := l.Acquire(context.Background())
	if err != nil || !ok {
		t.Fatalf("holding %s: got %v, %v, want true, nil", name, ok, err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

// waitForFile waits, up to d, until path contains want.
func waitForFile(t *testing.T, path, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %q after %s, want it to contain %q", path, b, d, want)
		}
		time.Sleep(10 * time.Millisecond) // polling a file, bounded by the deadline
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cmd.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
