package leasetest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: OnLost
// handlers of MemoryLeases, and the Server's connections and handlers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
