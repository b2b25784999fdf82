package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/store"
)

func logCmd(e *env) *cobra.Command {
	var f store.LogFilter
	var since string
	var asJSON, asCSV bool
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show the delivery log: who was told what, when, how, and whether it arrived",
		Example: `  crier log --incident INC-1
  crier log --status failed --since 2h
  crier log --json | jq .
  crier log --subscriber dr-morgan --show-body`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return usageError{fmt.Errorf("--json and --csv cannot be used together")}
			}
			if since != "" {
				t, err := parseSince(since, e.now())
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			if f.Status != "" && !validStatus(f.Status) {
				return usageError{fmt.Errorf("--status %q is not a delivery status: queued, sending, sent, delivered, failed, expired, suppressed or unknown", f.Status)}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				return printLog(ctx, a.st, f, e.stdout, asJSON, asCSV)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.IncidentID, "incident", "", "only deliveries about this incident")
	fl.StringVar(&f.Status, "status", "", "only this status")
	fl.StringVar(&f.Channel, "channel", "", "only this channel instance")
	fl.StringVar(&f.Kind, "kind", "", "only this kind (sms, email, slack)")
	fl.StringVar(&f.Subscriber, "subscriber", "", "only this subscriber id")
	fl.StringVar(&f.Trigger, "trigger", "", "only this trigger key")
	fl.StringVar(&since, "since", "", "only deliveries planned since a duration ago (2h) or a time (2026-11-25T08:00:00Z)")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many rows")
	fl.BoolVar(&f.WithBody, "show-body", false, "print the exact subject, text and HTML each recipient got")
	fl.BoolVar(&asJSON, "json", false, "one JSON object per line per delivery")
	fl.BoolVar(&asCSV, "csv", false, "CSV with the same columns as --json")
	return cmd
}

func validStatus(s string) bool {
	switch s {
	case store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusDelivered, store.StatusFailed, store.StatusExpired, store.StatusSuppressed, store.StatusUnknown:
		return true
	}
	return false
}

func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration like 2h or a time like 2026-11-25T08:00:00Z", v)
}

// logColumns are the --csv columns (the API's export uses the same).
var logColumns = store.LogColumns

func printLog(ctx context.Context, st *store.Store, f store.LogFilter, w io.Writer, asJSON, asCSV bool) error {
	switch {
	case asJSON:
		enc := json.NewEncoder(w)
		return st.Log(ctx, f, func(le *store.LogEntry) error { return enc.Encode(le) })
	case asCSV:
		cw := csv.NewWriter(w)
		cols := logColumns
		if f.WithBody {
			cols = append(append([]string(nil), cols...), store.LogBodyColumns...)
		}
		if err := cw.Write(cols); err != nil {
			return err
		}
		err := st.Log(ctx, f, func(le *store.LogEntry) error { return cw.Write(le.CSVRow(f.WithBody)) })
		cw.Flush()
		if err != nil {
			return err
		}
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCHANNEL\tSUBSCRIBER\tSTATUS\tREASON\tTRIES\tPROVIDER ID\tTRIGGER\tPLANNED")
	n := 0
	err := st.Log(ctx, f, func(le *store.LogEntry) error {
		n++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", le.ID, le.Kind, le.Channel, le.Subscriber, le.Status, le.Reason,
			le.Attempts, le.ProviderID, le.Trigger, le.CreatedAt.Local().Format("01-02 15:04:05"))
		if f.WithBody {
			tw.Flush()
			printBody(w, le)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(w, "(no deliveries match)")
	}
	return nil
}

func printBody(w io.Writer, le *store.LogEntry) {
	fmt.Fprintf(w, "    to %s (%s) via %s\n", le.Address, le.Subscriber, le.Channel)
	if le.Subject != "" {
		fmt.Fprintf(w, "    subject: %s\n", le.Subject)
	}
	if le.Segments > 0 || le.ProviderSegments > 0 {
		line := fmt.Sprintf("    segments: %d by crier's count", le.Segments)
		if le.ProviderSegments > 0 {
			line += fmt.Sprintf(", %d by the provider's", le.ProviderSegments)
		}
		fmt.Fprintln(w, line)
	}
	if le.Text != "" {
		fmt.Fprintf(w, "    --- text ---\n%s\n", indent(le.Text))
	}
	if le.HTML != "" {
		fmt.Fprintf(w, "    --- html ---\n%s\n", indent(le.HTML))
	}
	fmt.Fprintln(w)
}

func indent(s string) string {
	out := "    "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "    "
		}
	}
	return out
}
