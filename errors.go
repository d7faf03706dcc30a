package lease

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by this package. Check them with errors.Is.
var (
	// ErrNotHeld is matched by the cause of RunSingleton's work context, and
	// by the error RunSingleton returns, when the tenure the work ran under
	// was ended by a call to Release that RunSingleton did not make (a
	// shutdown hook, say): the work needs the lease held and it no longer is.
	ErrNotHeld = errors.New("lease: not held")

	// ErrLost is matched by every *LostError: the lease was held and is no
	// longer, without a voluntary Release.
	ErrLost = errors.New("lease: lost")

	// ErrInvalidSettings is matched by the error NewKubernetesLease returns
	// for Settings that fail validation.
	ErrInvalidSettings = errors.New("lease: invalid settings")

	// ErrInvalidToken is matched by errors from ParseToken and Token.Compare
	// for tokens that are not of the form "<resourceVersion>/<transitions>"
	// with a canonical integer resourceVersion.
	ErrInvalidToken = errors.New("lease: invalid token")

	// ErrBadResponse is matched by errors for answers the library could not
	// understand: garbage or truncated bodies, oversized bodies, or an object
	// that is not the Lease that was asked for.
	ErrBadResponse = errors.New("lease: bad response from API server")
)

// LostReason says why a tenure ended.
type LostReason string

// The reasons a tenure can end without a voluntary Release.
const (
	// LostConflict: the Lease names another holder, or none, or another
	// instance with the same Owner (a different nonce).
	LostConflict LostReason = "conflict"
	// LostDeleted: the Lease was deleted (404) or re-created (its uid changed).
	LostDeleted LostReason = "deleted"
	// LostDeadline: no renewal succeeded before the deadline, because the API
	// server was unreachable, too slow, or gave answers that were not a
	// decision. CheckAlive turned false on time.
	LostDeadline LostReason = "deadline"
	// LostHandoff: the holder stepped down for a planned handoff (see
	// RequestHandoff); Holder is the preferred holder it was asked to hand
	// the lease to. The tenure ended as on a Release: BeforeRelease hooks
	// (RunSingleton's work) were stopped first, then the Lease was left
	// without a holder.
	LostHandoff LostReason = "handoff"
)

// LostError is the reason passed to OnLost handlers. It says which tenure
// ended (Token), why (Reason), who holds the lease now if known (Holder),
// and the last error seen, if any (Err). errors.Is(err, ErrLost) is true.
type LostError struct {
	Reason LostReason
	Holder string
	Token  Token
	Err    error
}

// Error implements error.
func (e *LostError) Error() string {
	msg := fmt.Sprintf("lease: lost tenure %s: %s", e.Token, e.Reason)
	switch {
	case e.Reason == LostHandoff:
		msg += fmt.Sprintf(" (to %q)", e.Holder)
	case e.Holder != "":
		msg += fmt.Sprintf(" (holder now %q)", e.Holder)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error, if any.
func (e *LostError) Unwrap() error { return e.Err }

// Is reports whether target is ErrLost.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// ErrWorkDidNotStop is returned by RunSingleton (and by a Release that had
// to stop RunSingleton's work first) when work did not return within the
// grace period after its context was cancelled.
//
// When the tenure is still held (ctx ended, or a Release asked work to
// stop), it is NOT released while work may still run: a peer would start
// beside it. It is kept and renewed, and released as soon as work returns;
// until then the instance is busy (ErrBusy) and Release returns this error
// again. When the tenure was lost instead, a peer may already run: nothing
// this process does can stop that, and only fencing writes with the token
// (see Token) protects what work still writes. In both cases the usual
// answer is to exit the process.
var ErrWorkDidNotStop = errors.New("lease: work did not return within the grace period")

// ErrBusy is returned by RunSingleton, at once and without I/O, when a work
// started by another RunSingleton call on the same lease instance is still
// running (also one abandoned after ErrWorkDidNotStop): one instance never
// runs two works at a time. Give each RunSingleton its own instance, or wait
// for the first to return.
var ErrBusy = errors.New("lease: busy: another RunSingleton's work is running on this lease instance")

// errReleased is the cause of work's context, and what RunSingleton
// returns, when the tenure was ended by a Release that RunSingleton did not
// make (a shutdown hook, say).
var errReleased = fmt.Errorf("%w: the tenure was ended by a call to Release", ErrNotHeld)

// joinErrs joins the non-nil errors on one line ("a; b"), keeping them
// for errors.Is and errors.As.
func joinErrs(errs ...error) error {
	var nn []error
	for _, e := range errs {
		if e != nil {
			nn = append(nn, e)
		}
	}
	switch len(nn) {
	case 0:
		return nil
	case 1:
		return nn[0]
	}
	return lineErrors(nn)
}

// lineErrors is several errors printed on one line.
type lineErrors []error

func (e lineErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e lineErrors) Unwrap() []error { return e }
