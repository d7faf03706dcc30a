package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

// maxExecOutput bounds how much of a plugin's standard output is kept; an
// ExecCredential with a certificate chain is a few KiB.
const maxExecOutput = 1 << 20

// execError is a failed plugin run. Its text names the command and the
// problem, never the plugin's standard output or an Env value.
type execError struct {
	msg string
	err error
}

func (e *execError) Error() string { return e.msg }
func (e *execError) Unwrap() error { return e.err }

func (e *execCache) fail(cause error, format string, args ...any) error {
	return &execError{msg: fmt.Sprintf("lease: exec plugin %q: ", e.cfg.Command) + fmt.Sprintf(format, args...), err: cause}
}

// exec runs the plugin and decodes its answer.
func (e *execCache) exec() (*execCred, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.Command, e.cfg.Args...)
	env := os.Environ()
	for _, v := range e.cfg.Env {
		env = append(env, v.Name+"="+v.Value)
	}
	cmd.Env = append(env, "KUBERNETES_EXEC_INFO="+string(e.info))
	cmd.Stdin = nil // not a terminal: /dev/null
	stdout := &cappedBuffer{max: maxExecOutput}
	stderr := &cappedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a child that keeps the pipes open
	err := cmd.Run()
	errText := func() string {
		if s := snippet(stderr.buf.Bytes()); s != "" {
			return "; stderr: " + s
		}
		return ""
	}
	var exitErr *exec.ExitError
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, e.fail(nil, "did not finish within %v%s", e.timeout, errText())
	case errors.As(err, &exitErr):
		return nil, e.fail(err, "%v%s", err, errText())
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		hint := ""
		if h := strings.Join(strings.Fields(e.cfg.InstallHint), " "); h != "" {
			hint = "; install hint: " + h
		}
		return nil, e.fail(err, "command not found%s", hint)
	case err != nil:
		return nil, e.fail(err, "cannot run it: %v", stripPath(err))
	case stdout.over:
		return nil, e.fail(nil, "standard output is larger than %d bytes", maxExecOutput)
	}
	return e.parse(stdout.buf.Bytes())
}

// stripPath drops the path of an *fs.PathError (it is the command, which
// the message already names).
func stripPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parse decodes a plugin's standard output. Errors quote at most short,
// bounded fields of it, never a credential.
func (e *execCache) parse(out []byte) (*execCred, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, e.fail(nil, "printed nothing on standard output; want an ExecCredential")
	}
	var ec execCredential
	if err := json.Unmarshal(out, &ec); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, e.fail(nil, "standard output is not JSON (syntax error at byte %d); want an ExecCredential", se.Offset)
		}
		return nil, e.fail(nil, "standard output is not an ExecCredential JSON object")
	}
	if ec.Kind != "ExecCredential" {
		return nil, e.fail(nil, "standard output has kind %s, want \"ExecCredential\"", shortQuote(ec.Kind))
	}
	if ec.APIVersion != e.cfg.APIVersion {
		return nil, e.fail(nil, "returned apiVersion %s, want %q (Config.Exec.APIVersion)", shortQuote(ec.APIVersion), e.cfg.APIVersion)
	}
	st := ec.Status
	if st == nil {
		return nil, e.fail(nil, "ExecCredential has no status")
	}
	cred := &execCred{token: st.Token}
	switch {
	case (st.ClientCertificateData == "") != (st.ClientKeyData == ""):
		return nil, e.fail(nil, "status.clientCertificateData and status.clientKeyData must be set together")
	case st.ClientCertificateData != "":
		cert, err := tls.X509KeyPair([]byte(st.ClientCertificateData), []byte(st.ClientKeyData))
		if err != nil {
			return nil, e.fail(nil, "status.clientCertificateData and status.clientKeyData are not a PEM certificate and its key: %v", err)
		}
		cred.cert = &cert
	case st.Token == "":
		return nil, e.fail(nil, "ExecCredential has neither status.token nor status.clientCertificateData")
	}
	if st.ExpirationTimestamp != "" {
		t, err := time.Parse(time.RFC3339, st.ExpirationTimestamp)
		if err != nil {
			return nil, e.fail(nil, "status.expirationTimestamp %s is not an RFC 3339 time", shortQuote(st.ExpirationTimestamp))
		}
		cred.expiry = t
	}
	return cred, nil
}

// shortQuote quotes the start of a short field of a plugin's answer.
func shortQuote(s string) string {
	const n = 64
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// snippet returns the start of a plugin's standard error, on one line (as
// package lease quotes the start of an answer's body).
func snippet(data []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(data)), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// cappedBuffer keeps the first max bytes written to it and accepts (and
// drops) the rest, so that a chatty plugin is not blocked or broken.
type cappedBuffer struct {
	max  int
	buf  bytes.Buffer
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.over = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}
