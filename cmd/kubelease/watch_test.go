package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
)

func TestWatchPrintsEveryHolderChange(t *testing.T) {
	for _, output := range []string{"", "json"} {
		t.Run("output="+output, func(t *testing.T) {
			srv, kc := newTestServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- executeContext(ctx, []string{"watch", "w", "-o", output, "--kubeconfig", kc}, strings.NewReader(""), &out, &errb)
			}()
			lines := func(n int) []string {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					ls := strings.Split(strings.TrimSpace(out.String()), "\n")
					if out.String() != "" && len(ls) >= n {
						return ls
					}
					if time.Now().After(deadline) {
						t.Fatalf("watch: got %q after 10s, want %d lines (stderr %q)", out.String(), n, errb.String())
					}
					time.Sleep(10 * time.Millisecond) // polling output, bounded by the deadline
				}
			}
			cfg := srv.Config()
			cfg.BearerToken = testToken
			hold := func(owner string) *lease.KubernetesLease {
				l, err := lease.NewKubernetesLease(lease.Settings{Name: "w", Owner: owner, Config: cfg})
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := l.Acquire(ctx); !ok || err != nil {
					t.Fatalf("%s: Acquire got %v, %v, want true, nil", owner, ok, err)
				}
				return l
			}
			lines(1)
			a := hold("a")
			lines(2)
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
			lines(3)
			b := hold("b")
			defer b.Release(context.Background())
			got := lines(4)
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit status: got %d, want 0", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("watch did not return within 10s of its context ending")
			}
			want := []string{"", "a", "", "b"}
			if len(got) != len(want) {
				t.Fatalf("watch: got %q, want holders %q", got, want)
			}
			for i, line := range got {
				holder := holderOf(t, line, output)
				if holder != want[i] {
					t.Errorf("line %d: got holder %q (%q), want %q", i, holder, line, want[i])
				}
			}
		})
	}
}

// holderOf reads the holder from a line of "watch".
func holderOf(t *testing.T, line, output string) string {
	t.Helper()
	if output == "json" {
		var v leaseView
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		return v.Holder
	}
	_, rest, ok := strings.Cut(line, "holder=")
	if !ok {
		t.Fatalf("line %q: no holder=", line)
	}
	h, _, _ := strings.Cut(rest, " ")
	if h == "<none>" {
		return ""
	}
	return h
}

func TestWatchWithOnlyGet(t *testing.T) {
	srv, _ := newTestServer(t)
	srv.AddUser("getter", "get")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- executeContext(ctx, []string{"watch", "w", "--kubeconfig", writeKubeconfig(t, srv.URL, "getter")}, strings.NewReader(""), &out, &errb)
	}()
	holdLease(t, srv, "w")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "holder=other") {
		if time.Now().After(deadline) {
			t.Fatalf("watch: got %q after 10s, want a line with holder=other (stderr %q)", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond) // polling output, bounded by the deadline
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status: got %d, want 0 (stderr %q)", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not return within 10s of its context ending")
	}
}
