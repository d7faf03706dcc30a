// Package leasetest helps test code that holds leases with kubelease, and
// other implementations of lease.Lease. It has three parts: a fake API
// server, an in-memory lease, and two suites that check a lease.
//
// # The fake API server
//
// Server is an in-process fake of the coordination.k8s.io/v1 Lease REST
// endpoints of a kube-apiserver (1.37), served by net/http/httptest on
// 127.0.0.1; a lease.KubernetesLease reaches it through Server.Config.
// NewServer starts one (NewServerT and NewTLSServerT also close it when the
// test ends). It follows the wire rules of a real server: one global
// resourceVersion, a fresh uid per object, uid and resourceVersion
// preconditions, no-op updates that keep the resourceVersion and send no
// watch event, MicroTime format checks, a Warning header for unknown
// fields, the CoordinatedLeaderElection feature gate, and errors (409, 404,
// 422, 401, 403, ...) as the metav1.Status bodies a real server sends.
// Watches (?watch=true) stream events as a real server does; Bookmark,
// DropWatches, CompactLog and AwaitWatchers drive them from a test.
// RequireToken and AddUser make it authenticate and authorize as RBAC would.
// It also accepts core/v1 Events POSTed to /api/v1/namespaces/{ns}/events
// (a lease with lease.Settings.EventSource posts them) and records them
// (Events, AwaitEvents): it does not list, watch or update them. A user
// from AddUser is refused events (403) until GrantEvents; Fault.Resource
// and Request.Resource tell event requests from Lease requests, which
// Count and Counts count together by verb.
// The Conformance suite runs against a real kube-apiserver too, and any
// difference between the two is a bug in the fake.
//
// InjectFault makes it misbehave on chosen requests (see Fault): latency, a
// request held until the test releases it (Gate, Hang and Unhang; Pause
// and Resume hold every request), an error status with or without
// Retry-After, priority-and-fairness's plain-text 429, garbage or truncated
// bodies, connection resets, and a write applied whose answer is dropped.
// It counts requests per verb (Count, Counts) and logs them (Requests);
// AwaitRequests and AwaitReceived block until a number of requests have
// finished or arrived, so a test waits for the client instead of sleeping.
// Get, Put, Edit and Delete change the stored Leases (of type Lease) as a
// third party would, without HTTP.
//
// Known differences from a real kube-apiserver: only JSON is spoken (other
// content types get 415), PATCH, deletecollection, dryRun, pagination and
// streaming lists (sendInitialEvents) are not supported, watches send
// bookmarks only when Bookmark is called and have no time limit unless
// timeoutSeconds asks for one, managedFields are never set, and the
// namespaces that exist are a fixed set (see AddNamespace).
//
// # The in-memory lease
//
// MemoryLease is a lease.Lease with no HTTP and no clock, for unit tests of
// code that takes a lease.Lease. The MemoryLeases of one Arbiter contend
// with each other as KubernetesLeases contend on one Lease object, and the
// Arbiter ends a holder's tenure from outside: Revoke (another process took
// over), Delete (the object was deleted) and Expire (the holder missed its
// deadline). Like KubernetesLease, a MemoryLease is a lease.Waker (Wait
// returns as soon as the lease may be taken), a lease.HolderWatcher
// (OnHolderChange reports every change of holder) and a
// lease.HolderReporter, and Holder gives a read-only view of the record;
// so lease.RunSingleton over MemoryLeases hands the lease over as soon as
// the holder lets it go, without polling and with no clock to step, and
// calls OnNewHolder for each holder. Arbiter.Wait waits for the OnLost
// handlers they started and for the holder changes still being delivered.
//
// # The suites
//
// Conformance runs scenarios of lease.KubernetesLease against a server
// that ConformanceBackend names: this package's Server, or a real
// kube-apiserver. TestLease checks any lease.Lease through the interface
// alone, with a LeaseBackend that makes the leases and ends a tenure from
// outside; KubernetesLease (against Server) and MemoryLease pass it.
// TestSemaphore checks lease.Semaphore the same way, with a
// SemaphoreBackend that makes Semaphores sharing their slots: at most Slots
// holders on distinct slots, Release freeing a slot at once and waking a
// waiter, tokens increasing per slot, RunSingleton over a semaphore, and
// the refusal of invalid settings; it runs against Server in the lease
// module's tests and against kube-apiserver in e2e. All three are shaped
// like testing/fstest.TestFS: one call in a test function, one subtest per
// behaviour.
package leasetest
