package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// childEnv names the role a re-executed copy of this binary plays;
// childArgsEnv carries its parameters.
const (
	childEnv     = "KUBELEASE_BENCH_CHILD"
	childArgsEnv = "KUBELEASE_BENCH_ARGS"
)

// ChildMain must be called first thing in main (and TestMain): when this
// process was started as a child of the harness (the fake API server, the
// real one, a scale run), it plays that role and exits; otherwise it
// returns at once.
func ChildMain() {
	switch os.Getenv(childEnv) {
	case "":
		return
	case "fake":
		serveFake()
	case "real":
		serveReal()
	case "scale":
		scaleChild()
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown child role %q\n", os.Getenv(childEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// child is a re-executed copy of this binary playing a role. Its stdin is
// its lifeline: when we close it (or die), the child ends.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Scanner
}

// startChild starts a child for role with args (JSON-encoded into its
// environment) and returns it; read its output lines with line.
func startChild(role string, args any) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	if args != nil {
		data, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, childArgsEnv+"="+string(data))
	}
	cmd.Stderr = &quietWriter{w: os.Stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &child{cmd: cmd, stdin: stdin, out: sc}, nil
}

// line returns the child's next line of output; false when it ended.
func (c *child) line() (string, bool) {
	if !c.out.Scan() {
		return "", false
	}
	return c.out.Text(), true
}

// decode reads the child's next line as JSON into v.
func (c *child) decode(v any) error {
	l, ok := c.line()
	if !ok {
		return fmt.Errorf("bench: child %s ended without an answer", os.Getenv(childEnv))
	}
	return json.Unmarshal([]byte(l), v)
}

// stop closes the child's stdin and waits up to grace for it to exit,
// then kills it.
func (c *child) stop(grace time.Duration) {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// childArgs decodes this child's parameters into v.
func childArgs(v any) error {
	return json.Unmarshal([]byte(os.Getenv(childArgsEnv)), v)
}

// awaitParent blocks until the parent closes our stdin or dies.
func awaitParent() {
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// quietWriter passes a child's stderr on, less the fake's log lines about
// TLS handshakes that a client gave up (Go's HTTP/2 client races dials).
type quietWriter struct {
	w   io.Writer
	buf []byte
}

func (q *quietWriter) Write(p []byte) (int, error) {
	q.buf = append(q.buf, p...)
	for {
		i := bytes.IndexByte(q.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := q.buf[:i+1]
		if !bytes.Contains(line, []byte("TLS handshake error")) {
			if _, err := q.w.Write(line); err != nil {
				return len(p), err
			}
		}
		q.buf = q.buf[i+1:]
	}
}
