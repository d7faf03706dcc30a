package leasetest_test

// The tests in this file use leasetest as a package outside this module
// would: they import public paths only (TestOutsideImportsArePublic keeps
// it so), name the Lease type, build Leases and change them with Put and
// Edit, start servers with NewServerT, and run the behaviour table.

import (
	"context"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// TestOutsideImportsArePublic checks that this file imports no internal
// package, so that it compiles only as long as a user outside the module
// could write it.
func TestOutsideImportsArePublic(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "outside_test.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains("/"+path+"/", "/internal/") {
			t.Errorf("outside_test.go imports %s, want public paths only", path)
		}
	}
}

// TestOutsideLeaseTable runs the behaviour table against KubernetesLeases
// on a fake server per subtest, as a user's test of the library would.
// Revoke frees the Lease with Edit, as a third party would, and steps the
// leases' fake clock past the holder's deadline, so its tenure ends without
// a hook into the library.
func TestOutsideLeaseTable(t *testing.T) {
	type env struct {
		srv *leasetest.Server
		clk *clocktesting.FakeClock
	}
	envs := map[*testing.T]*env{} // subtests run one after another
	envOf := func(t *testing.T) *env {
		e := envs[t]
		if e == nil {
			e = &env{srv: leasetest.NewServerT(t), clk: clocktesting.NewFakeClock(time.Now())}
			envs[t] = e
		}
		return e
	}
	leasetest.TestLease(t, leasetest.LeaseBackend{
		New: func(t *testing.T, owner string) lease.Lease {
			e := envOf(t)
			l, err := lease.NewKubernetesLease(lease.Settings{
				Name: "job", Owner: owner, Config: e.srv.Config(), Clock: e.clk,
			})
			if err != nil {
				t.Fatalf("NewKubernetesLease(%s): %v", owner, err)
			}
			return l
		},
		Revoke: func(t *testing.T, holder lease.Lease) {
			e := envOf(t)
			err := e.srv.Edit("default", "job", func(l *leasetest.Lease) {
				l.Spec.HolderIdentity = nil
			})
			if err != nil {
				t.Fatalf("Edit: %v", err)
			}
			e.clk.Step(lease.DefaultTTL)
		},
	})
}

// TestOutsidePutGetEdit builds a Lease held by another process, checks
// that a KubernetesLease cannot take it, and frees it with Edit.
func TestOutsidePutGetEdit(t *testing.T) {
	srv := leasetest.NewServerT(t)
	holder, ttl := "pod-b", int32(15)
	now := metav1.NewMicroTime(time.Now())
	err := srv.Put(&leasetest.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "job", Labels: map[string]string{"app": "report"}},
		Spec: leasetest.LeaseSpec{
			HolderIdentity: &holder, LeaseDurationSeconds: &ttl, AcquireTime: &now, RenewTime: &now,
		},
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "pod-a", Config: srv.Config()})
	if err != nil {
		t.Fatalf("NewKubernetesLease: %v", err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })

	if ok, err := l.Acquire(context.Background()); ok || err != nil {
		t.Fatalf("Acquire of a Lease pod-b holds: got (%v, %v), want (false, nil)", ok, err)
	}
	if err := srv.Edit("default", "job", func(l *leasetest.Lease) { l.Spec.HolderIdentity = nil }); err != nil {
		t.Fatalf("Edit: %v", err)
	}
	if ok, err := l.Acquire(context.Background()); !ok || err != nil {
		t.Fatalf("Acquire of the freed Lease: got (%v, %v), want (true, nil)", ok, err)
	}
	got, ok := srv.Get("default", "job")
	if !ok {
		t.Fatal("Get: got no Lease, want one")
	}
	if h := got.Spec.Holder(); h != "pod-a" {
		t.Errorf("holder: got %q, want %q", h, "pod-a")
	}
	if app := got.Labels["app"]; app != "report" {
		t.Errorf("label app: got %q, want %q (kept across the takeover)", app, "report")
	}
}

// TestOutsideNewServerT checks that NewServerT and NewTLSServerT close
// their server when the test that started it ends.
func TestOutsideNewServerT(t *testing.T) {
	for _, tt := range []struct {
		name   string
		start  func(testing.TB) *leasetest.Server
		wantCA bool
	}{
		{"NewServerT", leasetest.NewServerT, false},
		{"NewTLSServerT", leasetest.NewTLSServerT, true},
	} {
		var url string
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			url = srv.URL
			if gotCA := len(srv.Config().CAData) > 0; gotCA != tt.wantCA {
				t.Errorf("Config().CAData set: got %v, want %v", gotCA, tt.wantCA)
			}
		})
		tr := &http.Transport{}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/readyz")
		tr.CloseIdleConnections()
		if err == nil {
			_ = resp.Body.Close()
			t.Errorf("%s: GET after the test ended: got %s, want a refused connection", tt.name, resp.Status)
		}
	}
}
