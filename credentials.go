package lease

import (
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// tokenRereadEvery is how often a BearerTokenFile is read again: kubelet
// rotates projected service-account tokens about every 48 minutes.
const tokenRereadEvery = time.Minute

// credentials supplies the bearer token of a Config. It is safe for
// concurrent use. The token is never logged or put in an error.
type credentials struct {
	file  string
	clock clock.PassiveClock

	mu     sync.Mutex // guards tok and readAt
	tok    string
	readAt time.Time
}

func newCredentials(cfg *Config, clk clock.PassiveClock) *credentials {
	c := &credentials{file: cfg.BearerTokenFile, clock: clk, tok: cfg.BearerToken}
	if c.file != "" {
		c.reread()
	}
	return c
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

// refresh re-reads the token after a 401. It reports whether a retry may
// help: only when a token file is configured.
func (c *credentials) refresh() bool {
	if c.file == "" {
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
