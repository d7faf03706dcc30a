package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// KubernetesVersion is the kube-apiserver this package builds: the version of
// k8s.io/kubernetes required by the e2e module's go.mod.
const KubernetesVersion = "v1.37.2"

// Binary returns the path of a kube-apiserver KubernetesVersion binary for
// this GOOS/GOARCH, building it first if it is not cached yet.
//
// The binary lives in os.UserCacheDir()/kubelease-e2e/, named after the
// version, so a second run (or another test binary) reuses it. It is built
// with `go build k8s.io/kubernetes/cmd/kube-apiserver` in the e2e module,
// whose go.mod pins every staging module, to a temporary name that is then
// renamed into place; an exclusive lock file keeps concurrent test binaries
// from building it twice. A cold build takes about 10 minutes on 2 cores
// and needs only Go and the module proxy.
func Binary(ctx context.Context) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("kube-apiserver-%s-%s-%s", KubernetesVersion, runtime.GOOS, runtime.GOARCH)
	path := filepath.Join(dir, name)
	if isExecutable(path) {
		return path, nil
	}

	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(path) { // built by someone else while we waited
		return path, nil
	}

	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	fmt.Fprintf(os.Stderr, "cluster: building kube-apiserver %s into %s (first run only; about 10 minutes on 2 cores)\n", KubernetesVersion, path)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", tmp.Name(), "k8s.io/kubernetes/cmd/kube-apiserver")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cluster: go build kube-apiserver in %s: %v\n%s", root, err, tail(out.String(), 40))
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "cluster: built kube-apiserver in %v\n", time.Since(start).Round(time.Second))
	return path, nil
}

// CacheDir is os.UserCacheDir()/kubelease-e2e, created if needed.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cluster: no cache directory for the kube-apiserver binary: %w", err)
	}
	dir := filepath.Join(base, "kubelease-e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// ModuleRoot returns the directory of the e2e module (the one holding the
// go.mod that pins k8s.io/kubernetes).
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(file))
		if isE2EModule(root) {
			return root, nil
		}
	}
	// Built with -trimpath, or moved: ask the go command from the working
	// directory, which for `go test` is a package directory of the module.
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err == nil {
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if isE2EModule(root) {
			return root, nil
		}
	}
	return "", errors.New("cluster: cannot find the e2e module (github.com/kubelease/lease/e2e); run the tests from inside it")
}

// RepoRoot returns the root module's directory (the parent of the e2e module).
func RepoRoot() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Dir(root), nil
}

func isE2EModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.Contains(data, []byte("module github.com/kubelease/lease/e2e\n"))
}

// goTool is the go command that runs the tests ($GOROOT/bin/go, as the go
// command sets GOROOT for the tests it runs), so builds use the same
// toolchain; else "go" from $PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); isExecutable(p) {
			return p
		}
	}
	return "go"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cluster: lock %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(os.Stderr, "cluster: waiting for another process building kube-apiserver (%s)\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
