package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

// exitCodeError ends the command with an exit status other than 1; msg, when
// not empty, is printed on stderr first.
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

// kubeFlags are kubectl's flags for reaching a cluster.
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
}

func (f *kubeFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
	pf.StringVar(&f.context, "context", "", "the kubeconfig context to use (default: its current-context)")
	pf.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the Lease (default: the context's namespace, else the pod's, else \"default\")")
}

// config returns the lease.Config the flags name, as kubectl would find it,
// and the namespace to use.
func (f *kubeFlags) config() (*lease.Config, string, error) {
	var (
		cfg *lease.Config
		err error
	)
	if f.kubeconfig != "" || f.context != "" {
		cfg, err = lease.LoadKubeconfig(f.kubeconfig, f.context)
	} else {
		cfg, err = lease.DefaultConfig()
	}
	if err != nil {
		return nil, "", fmt.Errorf("no cluster configuration: %w (pass --kubeconfig FILE, set $KUBECONFIG, or run in a pod with a service account)", err)
	}
	ns := f.namespace
	if ns == "" {
		ns = cfg.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}

// newRootCommand returns the kubelease command tree, writing to stdout and
// stderr and reading confirmations from stdin.
func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	kf := &kubeFlags{}
	root := &cobra.Command{
		Use:   "kubelease",
		Short: "Run commands under a Kubernetes Lease and see who holds one",
		Long: `kubelease holds coordination.k8s.io/v1 Leases from a shell: "kubelease run"
runs a command only while it holds a Lease, so that at most one process at a
time (or N with --slots) runs it; "kubelease status", "list" and "watch" show
who holds them; "kubelease handoff" moves one to a named contender without a
gap; "kubelease release --force" clears one by hand.

"run" needs, on leases (coordination.k8s.io) in the namespace: get, create,
update, delete and watch (list too with --slots). "status" needs get, "list"
list, "watch" get, list and watch, "handoff" get, update and watch,
"release --force" get and delete.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	kf.register(root)
	root.AddCommand(newRunCommand(kf), newStatusCommand(kf), newListCommand(kf), newWatchCommand(kf),
		newHandoffCommand(kf), newReleaseCommand(kf))
	return root
}

// execute runs the command line args and returns the process's exit status.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return executeContext(context.Background(), args, stdin, stdout, stderr)
}

// executeContext is execute with a context that ends waits and watches.
func executeContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if ec, ok := errors.AsType[*exitCodeError](err); ok {
		if ec.msg != "" {
			fmt.Fprintln(stderr, "kubelease: "+ec.msg)
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "kubelease: "+err.Error())
	return 1
}
