package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

func newListCommand(kf *kubeFlags) *cobra.Command {
	var output, selector string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the Leases of a namespace and who holds them",
		Long: `List reads the Leases of the namespace once (those the label selector -l
selects, if given) and prints one row per Lease, sorted by name, with the
columns of "kubelease status". It lists every Lease, not only kubelease's:
a Lease written by client-go shows its holder and expiry the same way. It
needs "list" on leases.`,
		Example: `  kubelease list -n jobs
  kubelease list -l kubelease.io/semaphore=builds -o wide
  kubelease list -o json | jq '.[] | select(.held) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := outputFormat(output); err != nil {
				return err
			}
			cfg, ns, err := kf.config()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), readTimeout)
			defer cancel()
			infos, err := lease.ListLeases(ctx, cfg, ns, selector)
			if err != nil {
				return fmt.Errorf("%s", describe(err, ns, ""))
			}
			views := make([]leaseView, 0, len(infos))
			for _, info := range infos {
				views = append(views, newLeaseView(info.Namespace, info.Name, info.HolderInfo))
			}
			return printList(cmd.OutOrStdout(), cmd.ErrOrStderr(), views, output, ns, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, yaml or wide")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, as kubectl's (e.g. app=web,tier!=db)")
	return cmd
}

// printList writes views in format to w; "no Leases" goes to stderr, as
// kubectl says "No resources found".
func printList(w, stderr io.Writer, views []leaseView, format, ns string, now time.Time) error {
	if done, err := printData(w, views, format); done {
		return err
	}
	if len(views) == 0 {
		fmt.Fprintf(stderr, "No Leases found in namespace %s.\n", ns)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	printHeader(tw, format)
	for _, v := range views {
		printRow(tw, v, format, now)
	}
	return tw.Flush()
}
