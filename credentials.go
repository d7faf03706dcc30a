package lease

import (
	"net/http"

	"github.com/kubelease/lease/internal/transport"
)

// credentials are the credentials of a Config, held by
// transport.Credentials, with the methods the REST client calls.
type credentials struct {
	c *transport.Credentials
}

// authorize sets req's Authorization header (see
// transport.Credentials.Authorize).
func (c *credentials) authorize(req *http.Request) error { return c.c.Authorize(req) }

// refresh is called after a 401 and reports whether a retry may help (see
// transport.Credentials.Refresh).
func (c *credentials) refresh() bool { return c.c.Refresh() }

// describe says which credentials a request carries, for the error of a
// 401 (see transport.Credentials.Describe).
func (c *credentials) describe() string { return c.c.Describe() }
