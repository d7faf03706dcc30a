package transport

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// TokenRereadEvery is how often a BearerTokenFile is read again: kubelet
// rotates projected service-account tokens about every 48 minutes.
const TokenRereadEvery = time.Minute

// Credentials supplies the credentials of a Config: a bearer token, static
// or from a file, or the answer of an exec plugin. It is safe for
// concurrent use. A token is never logged or put in an error.
type Credentials struct {
	file  string
	clock clock.PassiveClock
	// log receives the warning about a failed re-read; nil discards it.
	log *slog.Logger
	// cert names the client certificate the library's transport presents,
	// for Describe; "" when none (or Config.CustomClient is set).
	cert string
	// exec is the shared plugin cache when Config.Exec is set; execErr
	// says why Config.Exec is invalid (every request then fails with it).
	exec    *execCache
	execErr error
	// customClient is Config.CustomClient: a client certificate from the
	// plugin cannot be used then.
	customClient bool

	mu      sync.Mutex // guards tok, readAt, usedGen and warned
	tok     string
	readAt  time.Time
	usedGen uint64 // the plugin answer this lease used last
	warned  bool   // a failed re-read was logged; reset by a good read
}

// NewCredentials returns the credentials of cfg, timed by clk (token
// re-reads, plugin answer expiry); log receives the warning about a failed
// re-read of the token file (nil discards it). A token file is read at
// once: the error says why that failed or found no token, naming the file.
// An invalid Config.Exec is not an error here: every request then fails
// with it (Shared reports it first when the library builds the transport).
func NewCredentials(cfg *Config, clk clock.PassiveClock, log *slog.Logger) (*Credentials, error) {
	c := &Credentials{file: cfg.BearerTokenFile, clock: clk, log: log, tok: cfg.BearerToken, customClient: cfg.CustomClient}
	if cfg.Exec != nil {
		c.exec, c.execErr = execCacheFor(cfg)
		c.file, c.tok = "", ""
		return c, nil
	}
	switch {
	case c.customClient:
	case len(cfg.CertData) > 0:
		c.cert = "client certificate Config.CertData"
	case cfg.CertFile != "":
		c.cert = "client certificate from file " + cfg.CertFile
	}
	if c.file != "" {
		c.readAt = clk.Now()
		tok, err := readTokenFile(c.file)
		if err != nil {
			return nil, fmt.Errorf("%w; point it at a readable file that holds the token", err)
		}
		c.tok = tok
	}
	return c, nil
}

// readTokenFile returns the token in file; the error names the file and
// never holds file content.
func readTokenFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("lease: Config.BearerTokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("lease: Config.BearerTokenFile %s holds no token", file)
	}
	return tok, nil
}

// Describe says which credentials a request carries, for the error of a
// 401: "bearer token from file <path>", "bearer token Config.BearerToken",
// `credentials from exec plugin "<command>"`, "client certificate from
// file <path>" or "client certificate Config.CertData", joined by "and";
// "no credentials" when there are none. It never holds a credential.
func (c *Credentials) Describe() string {
	if c.exec != nil {
		return fmt.Sprintf("credentials from exec plugin %q", c.exec.cfg.Command)
	}
	var sent []string
	switch {
	case c.file != "":
		sent = append(sent, "bearer token from file "+c.file)
	case c.tok != "":
		sent = append(sent, "bearer token Config.BearerToken")
	}
	if c.cert != "" {
		sent = append(sent, c.cert)
	}
	if len(sent) == 0 {
		return "no credentials"
	}
	return strings.Join(sent, " and ")
}

// Authorize sets req's Authorization header, running the exec plugin when
// its cached answer has expired or was dropped after a 401. Waiting for the
// plugin ends with req's context. The error names the plugin and the
// problem, never a credential.
func (c *Credentials) Authorize(req *http.Request) error {
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
func (c *Credentials) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != "" && c.clock.Since(c.readAt) >= TokenRereadEvery {
		c.rereadLocked()
	}
	return c.tok
}

// Refresh is called after a 401. It re-reads the token file, or drops the
// plugin answer the request used so that the plugin runs again, and
// reports whether a retry may help: only with a token file or a plugin.
func (c *Credentials) Refresh() bool {
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

func (c *Credentials) reread() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rereadLocked()
}

// rereadLocked reads the file again. A read that fails or finds no token
// keeps the previous token; the first of a run of such failures is logged
// (as a warning), the others are not.
func (c *Credentials) rereadLocked() {
	c.readAt = c.clock.Now()
	tok, err := readTokenFile(c.file)
	if err != nil {
		if !c.warned && c.log != nil {
			c.log.Warn("kubelease: re-reading the bearer token file failed; keeping the previous token",
				"file", c.file, "error", err.Error())
		}
		c.warned = true
		return
	}
	c.tok, c.warned = tok, false
}
