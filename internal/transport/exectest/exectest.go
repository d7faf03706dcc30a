// Package exectest gives tests a Kubernetes exec credential plugin to run:
// testdata/execplugin, built once per test binary, and a setup of it with
// its own files (a run counter and the KUBERNETES_EXEC_INFO it saw). It
// serves the tests of package transport, which runs plugins, and of
// package lease, whose leases use them.
package exectest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// pluginSource keys the build cache: a changed plugin is built again.
//
//go:embed testdata/execplugin/main.go
var pluginSource []byte

// pluginPackage is the plugin's import path, built from any directory of
// the module.
const pluginPackage = "github.com/kubelease/lease/internal/transport/exectest/testdata/execplugin"

// built is testdata/execplugin, built once per test binary.
var built struct {
	once sync.Once
	path string
	skip string
	err  error
}

// PluginPath returns the path of testdata/execplugin, built once per test
// binary (into the user's cache directory, keyed by the source and the Go
// version, so later runs reuse it). It skips t when the go command is not
// on $PATH.
func PluginPath(t testing.TB) string {
	t.Helper()
	built.once.Do(build)
	if built.skip != "" {
		t.Skip(built.skip)
	}
	require.NoError(t, built.err)
	return built.path
}

func build() {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		built.skip = "skipping: the exec plugin tests build testdata/execplugin and need the go command on $PATH"
		return
	}
	sum := sha256.Sum256(append(pluginSource, runtime.Version()+runtime.GOOS+runtime.GOARCH...))
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kubelease-test", "execplugin-"+hex.EncodeToString(sum[:8]))
	path := filepath.Join(dir, "plugin")
	if runtime.GOOS == "windows" {
		path += ".exe"
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		built.path = path
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		built.err = err
		return
	}
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	out, err := exec.Command(goCmd, "build", "-o", tmp, pluginPackage).CombinedOutput()
	if err != nil {
		built.err = fmt.Errorf("go build %s: %v\n%s", pluginPackage, err, out)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		built.err = err
		return
	}
	built.path = path
}

// Var is one environment variable for the plugin; it converts to
// lease.ExecEnvVar and transport.ExecEnvVar.
type Var struct {
	Name, Value string
}

// Plugin is a setup of the plugin with its own directory, so that an exec
// configuration made from it (and hence its cache entry) is unique to the
// test.
type Plugin struct {
	// Dir is the setup's directory, removed at the end of the test.
	Dir string
	// Command is the built plugin.
	Command string
	// Env points PLUGIN_COUNTER_FILE and PLUGIN_INFO_FILE into Dir, then
	// holds the variables given to NewPlugin.
	Env []Var
}

// NewPlugin returns a plugin setup with the given PLUGIN_* variables
// (name, value pairs) besides the counter and info files.
func NewPlugin(t *testing.T, kv ...string) *Plugin {
	t.Helper()
	p := &Plugin{Dir: t.TempDir(), Command: PluginPath(t)}
	p.Env = []Var{
		{Name: "PLUGIN_COUNTER_FILE", Value: p.counter()},
		{Name: "PLUGIN_INFO_FILE", Value: p.info()},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Env = append(p.Env, Var{Name: kv[i], Value: kv[i+1]})
	}
	return p
}

func (p *Plugin) counter() string { return filepath.Join(p.Dir, "runs") }
func (p *Plugin) info() string    { return filepath.Join(p.Dir, "info.json") }

// Runs is how many times the plugin has run.
func (p *Plugin) Runs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(p.counter())
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
}

// ExecInfo is the KUBERNETES_EXEC_INFO the plugin saw last.
func (p *Plugin) ExecInfo(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.info())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "KUBERNETES_EXEC_INFO %s", b)
	return m
}
