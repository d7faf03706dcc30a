package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/kubelease/lease"
)

// exitFree is the exit status of "status" when nobody holds the lease.
const exitFree = 3

// leaseView is a Lease as "status" and "watch" show it.
type leaseView struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Held is true when a live holder has it: it exists, names a holder,
	// and has not expired as this process computes it.
	Held            bool       `json:"held"`
	Exists          bool       `json:"exists"`
	Holder          string     `json:"holder,omitempty"`
	AcquireTime     *time.Time `json:"acquireTime,omitempty"`
	RenewTime       *time.Time `json:"renewTime,omitempty"`
	LeaseDuration   string     `json:"leaseDuration,omitempty"`
	ExpiresIn       string     `json:"expiresIn,omitempty"`
	Transitions     int32      `json:"transitions"`
	ResourceVersion string     `json:"resourceVersion,omitempty"`
	// Token is the fencing token of the holder's tenure, as the holder
	// published it at its first renewal; "" until then.
	Token string `json:"token,omitempty"`
	// PreferredHolder is the target of a pending planned handoff.
	PreferredHolder string    `json:"preferredHolder,omitempty"`
	ObservedAt      time.Time `json:"observedAt"`
}

func newLeaseView(ns, name string, h lease.HolderInfo) leaseView {
	v := leaseView{
		Namespace: ns, Name: name, Exists: h.Exists, Holder: h.Holder,
		Held:        h.Exists && h.Holder != "" && h.ExpiresIn > 0,
		Transitions: h.Transitions, ResourceVersion: h.ResourceVersion, ObservedAt: h.ObservedAt.UTC(),
		PreferredHolder: h.PreferredHolder,
	}
	if h.HolderToken != (lease.Token{}) {
		v.Token = h.HolderToken.String()
	}
	if v.ObservedAt.IsZero() {
		v.ObservedAt = time.Now().UTC()
	}
	if !h.AcquireTime.IsZero() {
		v.AcquireTime = &h.AcquireTime
	}
	if !h.RenewTime.IsZero() {
		v.RenewTime = &h.RenewTime
	}
	if h.Exists {
		v.LeaseDuration = h.Duration.String()
		v.ExpiresIn = roundDur(h.ExpiresIn).String()
	}
	return v
}

// outputFormat checks the -o flag.
func outputFormat(o string) error {
	switch o {
	case "", "wide", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: unknown output format (use json, yaml or wide)", o)
}

// ago is how long before now t was, for people; "<none>" when t is nil.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "<none>"
	}
	return roundDur(now.Sub(*t)).String() + " ago"
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// printData writes v as indented JSON or as YAML, as format says; it
// reports false, writing nothing, for the table formats.
func printData(w io.Writer, v any, format string) (bool, error) {
	var b []byte
	var err error
	switch format {
	case "json":
		b, err = json.MarshalIndent(v, "", "  ")
		b = append(b, '\n')
	case "yaml":
		b, err = yaml.Marshal(v)
	default:
		return false, nil
	}
	if err == nil {
		_, err = w.Write(b)
	}
	return true, err
}

// printStatus writes v in format to w.
func printStatus(w io.Writer, v leaseView, format string, now time.Time) error {
	if done, err := printData(w, v, format); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	printHeader(tw, format)
	printRow(tw, v, format, now)
	return tw.Flush()
}

// printHeader writes the column titles of a status or list table.
func printHeader(w io.Writer, format string) {
	if format == "wide" {
		fmt.Fprintln(w, "NAMESPACE\tNAME\tHOLDER\tTOKEN\tEXPIRES IN\tRENEWED\tACQUIRED\tTRANSITIONS\tPREFERRED\tDURATION\tRESOURCEVERSION")
		return
	}
	fmt.Fprintln(w, "NAME\tHOLDER\tTOKEN\tEXPIRES IN\tRENEWED\tACQUIRED\tTRANSITIONS\tPREFERRED")
}

// printRow writes v as a row of a status or list table.
func printRow(w io.Writer, v leaseView, format string, now time.Time) {
	expires := "<none>"
	if v.Held {
		expires = v.ExpiresIn
	} else if v.Exists && v.Holder != "" {
		expires = "expired"
	}
	token := orNone(v.Token)
	if v.Holder != "" && v.Token == "" {
		token = "<not yet renewed>"
	}
	if format == "wide" {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Namespace, v.Name, orNone(v.Holder), token, expires,
			ago(v.RenewTime, now), ago(v.AcquireTime, now), v.Transitions, orNone(v.PreferredHolder), orNone(v.LeaseDuration), orNone(v.ResourceVersion))
		return
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, orNone(v.Holder), token, expires,
		ago(v.RenewTime, now), ago(v.AcquireTime, now), v.Transitions, orNone(v.PreferredHolder))
}

// newObserver returns a KubernetesLease that only reads NAME (its Owner is
// never written), with the config and namespace the flags name.
func newObserver(kf *kubeFlags, name string) (*lease.KubernetesLease, *lease.Config, string, error) {
	cfg, ns, err := kf.config()
	if err != nil {
		return nil, nil, "", err
	}
	l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Namespace: ns, Owner: "kubelease-observer-" + defaultID(), Config: cfg})
	return l, cfg, ns, err
}

func newStatusCommand(kf *kubeFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show who holds a Lease",
		Long: `Status reads the Lease NAME once and shows its holder, when it expires (as
this process computes it: the Lease's renewTime + duration + 1s of allowed
clock skew), when it was last renewed and acquired, and how many times its
holder changed. It needs "get" on leases.

TOKEN is the fencing token of the holder's tenure
("<resourceVersion>/<transitions>"), which the holder publishes in the
annotation kubelease.io/token at its first renewal ("<not yet renewed>"
before that; the holder's CMD has it as KUBELEASE_TOKEN from the start).
PREFERRED is the target of a pending "kubelease handoff".

Exit status: 0 when a live holder holds it, 3 when it is free (absent, no
holder, or expired), 1 on errors.`,
		Example: `  kubelease status nightly-backup -n jobs
  kubelease status nightly-backup -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := outputFormat(output); err != nil {
				return err
			}
			name := args[0]
			info, _, err := readLease(cmd.Context(), kf, name)
			if err != nil {
				return err
			}
			v := newLeaseView(info.Namespace, name, info.HolderInfo)
			if err := printStatus(cmd.OutOrStdout(), v, output, time.Now()); err != nil {
				return err
			}
			if !v.Held {
				return &exitCodeError{code: exitFree}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, yaml or wide")
	return cmd
}

// readTimeout bounds the one read of status, list and release.
const readTimeout = 30 * time.Second

// readLease reads the Lease name in the namespace the flags say, once, and
// returns it with the config it used.
func readLease(ctx context.Context, kf *kubeFlags, name string) (lease.LeaseInfo, *lease.Config, error) {
	cfg, ns, err := kf.config()
	if err != nil {
		return lease.LeaseInfo{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	info, err := lease.ReadLease(ctx, cfg, ns, name)
	if err != nil {
		return lease.LeaseInfo{}, nil, fmt.Errorf("%s", describe(err, ns, name))
	}
	return info, cfg, nil
}
