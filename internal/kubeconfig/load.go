package kubeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load returns the Config of the context named contextName ("" means the
// current-context) in the kubeconfig files of path, read and merged as
// kubectl does; see lease.LoadKubeconfig. path is a list separated by
// os.PathListSeparator, as in $KUBECONFIG; "" means $KUBECONFIG if set,
// else ~/.kube/config. When none of the files exists the error matches
// fs.ErrNotExist.
func Load(path, contextName string) (*Config, error) {
	fromEnv := false
	if path == "" {
		var err error
		if path, fromEnv, err = defaultPath(); err != nil {
			return nil, err
		}
	}
	kc, err := readFiles(filepath.SplitList(path))
	if err != nil {
		var none *noFileError
		if errors.As(err, &none) {
			none.fromEnv = fromEnv
		}
		return nil, err
	}
	return kc.config(contextName)
}

// defaultPath is $KUBECONFIG if set (fromEnv is then true), else
// ~/.kube/config.
func defaultPath() (path string, fromEnv bool, err error) {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return env, true, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", false, fmt.Errorf("lease: kubeconfig: $KUBECONFIG is not set and the home directory is unknown: %w", err)
	}
	return filepath.Join(home, ".kube", "config"), false, nil
}

// noFileError says that none of the kubeconfig files exists.
type noFileError struct {
	paths   []string
	fromEnv bool // the paths came from $KUBECONFIG
}

func (e *noFileError) Error() string {
	switch {
	case e.fromEnv && len(e.paths) == 0:
		return "lease: kubeconfig: $KUBECONFIG is set but names no file; unset KUBECONFIG or point it at an existing file"
	case e.fromEnv:
		return fmt.Sprintf("lease: kubeconfig: no file named by $KUBECONFIG exists (%s); unset KUBECONFIG or point it at an existing file", strings.Join(e.paths, ", "))
	default:
		return fmt.Sprintf("lease: kubeconfig: no such file: %s", strings.Join(e.paths, string(os.PathListSeparator)))
	}
}

func (e *noFileError) Unwrap() error { return fs.ErrNotExist }

// readFiles reads and merges the files that exist among paths.
func readFiles(paths []string) (*merged, error) {
	kc := &merged{
		clusters: map[string]defined[fileCluster]{},
		users:    map[string]defined[fileUser]{},
		contexts: map[string]defined[fileContext]{},
	}
	var named []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		named = append(named, p)
		file, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("lease: kubeconfig %s: %w", p, err)
		}
		if seen[file] {
			continue
		}
		seen[file] = true
		data, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease: kubeconfig %s: %w", file, err)
		}
		if err := kc.merge(file, data); err != nil {
			return nil, err
		}
	}
	if len(kc.files) == 0 {
		return nil, &noFileError{paths: named}
	}
	return kc, nil
}
