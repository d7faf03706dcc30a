package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

func newReleaseCommand(kf *kubeFlags) *cobra.Command {
	var force, yes bool
	cmd := &cobra.Command{
		Use:   "release NAME --force",
		Short: "Delete a Lease by hand (an operator clearing a stuck lease)",
		Long: `Release --force deletes the Lease NAME for an operator: it reads the Lease,
shows its holder and when it expires, asks for confirmation (--yes skips the
question), and deletes it with the uid and resourceVersion it showed as
preconditions, so that a Lease renewed or taken by another process since is
left alone (exit 1: look again and decide again).

A live holder loses the Lease (at its next renewal, or at once if it
watches it) and stops its work, but a peer may start before that work has
stopped. Prefer "kubelease handoff", which stops the work first, or wait
for the Lease to expire. A process that holds the Lease releases it itself
when its command ends: this is for holders that are gone or stuck.

It needs "get" and "delete" on the Lease.`,
		Example: `  kubelease release nightly-backup -n jobs --force
  kubelease release nightly-backup --force --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !force {
				return fmt.Errorf("release %s deletes a Lease that another process may hold: pass --force to do it (and --yes to skip the question)", name)
			}
			info, cfg, err := readLease(cmd.Context(), kf, name)
			if err != nil {
				return err
			}
			ns := info.Namespace
			out := cmd.OutOrStdout()
			if !info.Exists {
				fmt.Fprintf(out, "Lease %s/%s does not exist: nothing to release\n", ns, name)
				return nil
			}
			v := newLeaseView(ns, name, info.HolderInfo)
			state := "is free (no holder)"
			switch {
			case v.Held:
				state = fmt.Sprintf("is held by %s (expires in %s)", v.Holder, v.ExpiresIn)
			case v.Holder != "":
				state = fmt.Sprintf("names %s, but has expired", v.Holder)
			}
			fmt.Fprintf(out, "Lease %s/%s %s.\n", ns, name, state)
			if !yes {
				fmt.Fprintf(out, "Delete it? [y/N] ")
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					fmt.Fprintln(out)
					return &exitCodeError{code: 1, msg: "not released: not confirmed (answer y, or pass --yes)"}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), readTimeout)
			defer cancel()
			err = lease.ForceRelease(ctx, cfg, info)
			if e, ok := errors.AsType[*lease.APIError](err); ok && e.StatusCode == http.StatusConflict {
				return fmt.Errorf("not released: Lease %s/%s changed since it was read (renewed or taken over): run again to see it and decide again", ns, name)
			}
			if err != nil {
				return fmt.Errorf("%s", describe(err, ns, name))
			}
			fmt.Fprintf(out, "Lease %s/%s deleted\n", ns, name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "required: delete the Lease whoever holds it")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
