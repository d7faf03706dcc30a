package bench

import (
	"os"
	"testing"
)

// TestMain lets this test binary serve as the fake API server process of
// the per-renewal benchmarks (see ChildMain).
func TestMain(m *testing.M) {
	ChildMain()
	code := m.Run()
	CloseBenchFake()
	os.Exit(code)
}

// CPU time and allocations per renewal (see BenchRenew* for what one op
// is). Run:
//
//	go test -run '^$' -bench Renew -benchmem
func BenchmarkRenewKubelease(b *testing.B)          { BenchRenewKubelease(b, SharedFake(b)) }
func BenchmarkRenewKubeleaseRealClock(b *testing.B) { BenchRenewKubeleaseRealClock(b, SharedFake(b)) }
func BenchmarkRenewClientGoElector(b *testing.B)    { BenchRenewClientGoElector(b, SharedFake(b)) }
func BenchmarkRenewClientGoLeaseLock(b *testing.B)  { BenchRenewClientGoLock(b, SharedFake(b)) }
