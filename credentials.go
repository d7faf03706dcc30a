package lease

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// tokenRereadEvery is how often a BearerTokenFile is read again: kubelet
// rotates projected service-account tokens about every 48 minutes.
const tokenRereadEvery = time.Minute

// credentials supplies the credentials of a Config: a bearer token, static
// or from a file, or the answer of an exec plugin. It is safe for
// concurrent use. A token is never logged or put in an error.
type credentials struct {
	file  string
	clock clock.PassiveClock
	// exec is the shared plugin cache when Config.Exec is set; execErr
	// says why Config.Exec is invalid (every request then fails with it).
	exec    *execCache
	execErr error
	// customClient is true when Config.HTTPClient is set: a client
	// certificate from the plugin cannot be used then.
	customClient bool

	mu      sync.Mutex // guards tok, readAt and usedGen
	tok     string
	readAt  time.Time
	usedGen uint64 // the plugin answer this lease used last
}

func newCredentials(cfg *Config, clk clock.PassiveClock) *credentials {
	c := &credentials{file: cfg.BearerTokenFile, clock: clk, tok: cfg.BearerToken, customClient: cfg.HTTPClient != nil}
	if cfg.Exec != nil {
		c.exec, c.execErr = execCacheFor(cfg)
		c.file, c.tok = "", ""
		return c
	}
	if c.file != "" {
		c.reread()
	}
	return c
}

// authorize sets req's Authorization header, running the exec plugin when
// its cached answer has expired or was dropped after a 401. Waiting for the
// plugin ends with req's context. The error names the plugin and the
// problem, never a credential.
func (c *credentials) authorize(req *http.Request) error {
	if c.execErr != nil {
		return c.execErr
	}
	if c.exec == nil {
		if tok := c.token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return nil
	}
	cred, err := c.exec.get(req.Context(), c.clock)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.usedGen = cred.gen
	c.mu.Unlock()
	switch {
	case cred.token != "":
		req.Header.Set("Authorization", "Bearer "+cred.token)
	case c.customClient:
		return fmt.Errorf("lease: exec plugin %q returned a client certificate and no token: a client certificate cannot be used with Config.HTTPClient", c.exec.cfg.Command)
	}
	return nil
}

// token returns the current token, re-reading the file when it is due.
func (c *credentials) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != "" && c.clock.Since(c.readAt) >= tokenRereadEvery {
		c.rereadLocked()
	}
	return c.tok
}

// refresh is called after a 401. It re-reads the token file, or drops the
// plugin answer the request used so that the plugin runs again, and
// reports whether a retry may help: only with a token file or a plugin.
func (c *credentials) refresh() bool {
	switch {
	case c.execErr != nil:
		return false
	case c.exec != nil:
		c.mu.Lock()
		gen := c.usedGen
		c.mu.Unlock()
		c.exec.invalidate(gen)
		return true
	case c.file == "":
		return false
	}
	c.reread()
	return true
}

func (c *credentials) reread() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rereadLocked()
}

// rereadLocked reads the file; a failed read keeps the previous token.
func (c *credentials) rereadLocked() {
	c.readAt = c.clock.Now()
	b, err := os.ReadFile(c.file)
	if err != nil {
		return
	}
	if t := strings.TrimSpace(string(b)); t != "" {
		c.tok = t
	}
}
