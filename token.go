package lease

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// Token is a fencing token: it identifies one tenure of a lease.
//
// ResourceVersion is the resourceVersion the API server gave the write that
// started the tenure; Transitions is the leaseTransitions value that write
// carried. On Kubernetes 1.35 and later resourceVersions of one resource type
// are integers that only grow, so tokens of later tenures compare greater,
// across releases and re-creations of the Lease.
//
// The fencing recipe: a new holder first writes its token to the fenced
// store (which remembers the highest token it has seen and refuses writes
// with a smaller one), and only then starts work. A stale holder that wakes
// up late then finds its writes refused.
type Token struct {
	ResourceVersion string
	Transitions     int32
}

// String formats t as "<resourceVersion>/<leaseTransitions>".
func (t Token) String() string {
	return t.ResourceVersion + "/" + strconv.FormatInt(int64(t.Transitions), 10)
}

// IsZero reports whether t is the zero Token (no tenure).
func (t Token) IsZero() bool { return t == Token{} }

// ParseToken parses the form String produces. The resourceVersion must be a
// canonical decimal integer (no sign, no leading zero) and the transitions a
// non-negative int32.
func ParseToken(s string) (Token, error) {
	rv, tr, ok := strings.Cut(s, "/")
	if !ok {
		return Token{}, fmt.Errorf("%w %q: want <resourceVersion>/<transitions>", ErrInvalidToken, s)
	}
	if _, err := resourceversion.CompareResourceVersion(rv, rv); err != nil {
		return Token{}, fmt.Errorf("%w %q: resourceVersion %q is not a canonical integer", ErrInvalidToken, s, rv)
	}
	n, err := strconv.ParseInt(tr, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != tr {
		return Token{}, fmt.Errorf("%w %q: transitions %q is not a non-negative int32", ErrInvalidToken, s, tr)
	}
	return Token{ResourceVersion: rv, Transitions: int32(n)}, nil
}

// Compare orders t and u by resourceVersion as an integer: -1 if t is older,
// 0 if they are the same tenure, +1 if t is newer. It returns an error
// (matching ErrInvalidToken) when either resourceVersion is not a canonical
// integer, as k8s.io/apimachinery/pkg/util/resourceversion defines it;
// such tokens come from API servers older than 1.35 or from other stores and
// cannot be ordered.
func (t Token) Compare(u Token) (int, error) {
	c, err := resourceversion.CompareResourceVersion(t.ResourceVersion, u.ResourceVersion)
	if err != nil {
		return 0, fmt.Errorf("%w: comparing %s with %s: %v", ErrInvalidToken, t, u, err)
	}
	return c, nil
}
