package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/crier-dev/crier/store"
)

// retryOptions are crier retry's flags.
type retryOptions struct {
	deadline    time.Duration
	statuses    []string
	trigger     string
	channel     string
	since       string
	yes, dryRun bool
	filtered    bool // a filter flag was given
}

func retryCmd(e *env) *cobra.Command {
	var o retryOptions
	cmd := &cobra.Command{
		Use:   "retry ID... | retry --status STATUS [--trigger KEY] [--channel NAME] [--since TIME]",
		Short: "Queue unknown, failed or expired deliveries again (after checking the provider)",
		Long: `Queue deliveries again: those held as unknown after a crash (once you have checked with the provider
that they did not arrive), or failed or expired ones worth another try. Attempts start afresh and
the deliveries may be sent until --deadline from now; crier serve sends them.

With ids, each id is checked: one that does not exist, or whose delivery is not unknown, failed or
expired, is named on stderr and not queued; the others are queued, and the exit status is 1 if any
was not.

With filters (no ids), the deliveries they select are counted and shown by channel and status, and
crier asks before queuing them; --yes queues them without asking (needed when stdin is not a
terminal), --dry-run only counts. --status defaults to unknown.`,
		Example: `  crier retry 812 813
  crier retry --status unknown --channel clinician-sms --since 2h
  crier retry --status failed,expired --trigger send:3f9c2a0b7e1d-1 --yes
  crier retry --status unknown --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			o.filtered = fl.Changed("status") || fl.Changed("trigger") || fl.Changed("channel") || fl.Changed("since")
			switch {
			case len(args) > 0 && o.filtered:
				return usageError{errors.New("give delivery ids or filters (--status, --trigger, --channel, --since), not both")}
			case len(args) == 0 && !o.filtered:
				return usageError{errors.New("give delivery ids (crier log shows them) or select deliveries with --status, --trigger, --channel or --since")}
			case len(args) > 0:
				ids, err := parseIDs(args)
				if err != nil {
					return usageError{err}
				}
				return withApp(cmd, e, func(ctx context.Context, a *app) error { return retryIDs(ctx, a, ids, o) })
			}
			f, err := o.filter(e.now())
			if err != nil {
				return usageError{err}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error { return retryFiltered(ctx, a, f, o) })
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.deadline, "deadline", time.Hour, "how long the requeued deliveries may still be tried")
	fl.StringSliceVar(&o.statuses, "status", []string{store.StatusUnknown}, "with filters: unknown, failed or expired (comma-separated for several)")
	fl.StringVar(&o.trigger, "trigger", "", "with filters: only deliveries of this trigger key")
	fl.StringVar(&o.channel, "channel", "", "with filters: only this channel instance")
	fl.StringVar(&o.since, "since", "", "with filters: only deliveries planned since a duration ago (2h) or a time (2026-11-25T08:00:00Z)")
	fl.BoolVar(&o.yes, "yes", false, "queue what the filters select without asking")
	fl.BoolVar(&o.dryRun, "dry-run", false, "only show what would be queued")
	return cmd
}

// parseIDs reads delivery ids, each once, in the order given.
func parseIDs(args []string) ([]int64, error) {
	var ids []int64
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("delivery id %q is not a number (crier log shows ids)", a)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// filter checks the filter flags and builds the store's filter.
func (o retryOptions) filter(now time.Time) (store.RetryFilter, error) {
	f := store.RetryFilter{Trigger: o.trigger, Channel: o.channel}
	for _, s := range o.statuses {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case !validStatus(s):
			return f, fmt.Errorf("--status %q is not a delivery status: give unknown, failed or expired", s)
		case !store.Retryable(s):
			return f, fmt.Errorf("--status %s: only unknown, failed or expired deliveries can be queued again", s)
		case !slices.Contains(f.Statuses, s):
			f.Statuses = append(f.Statuses, s)
		}
	}
	if len(f.Statuses) == 0 {
		return f, errors.New("--status is empty: give unknown, failed or expired")
	}
	if o.since != "" {
		t, err := parseSince(o.since, now)
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	return f, nil
}

// describe is the filter in words, for the summary line.
func describe(f store.RetryFilter) string {
	parts := []string{"status " + strings.Join(f.Statuses, " or ")}
	if f.Trigger != "" {
		parts = append(parts, "trigger "+f.Trigger)
	}
	if f.Channel != "" {
		parts = append(parts, "channel "+f.Channel)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "planned since "+f.Since.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	return strings.Join(parts, ", ")
}

// retryFiltered counts what f selects, asks, and queues it again.
func retryFiltered(ctx context.Context, a *app, f store.RetryFilter, o retryOptions) error {
	e := a.env
	rows, err := a.st.RetryCandidates(ctx, f)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintf(e.stdout, "no deliveries match (%s): nothing to queue\n", describe(f))
		return nil
	}
	fmt.Fprintf(e.stdout, "%d deliveries match (%s):\n", len(rows), describe(f))
	printBreakdown(e.stdout, rows)
	if o.dryRun {
		fmt.Fprintln(e.stdout, "dry run: nothing was queued")
		return nil
	}
	if !o.yes {
		ok, err := e.confirm(fmt.Sprintf("Queue these %d deliveries again? [y/N] ", len(rows)))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("nothing was queued")
		}
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return a.requeue(ctx, ids, len(rows), o.deadline)
}

// printBreakdown shows the selected deliveries by channel and status.
func printBreakdown(w io.Writer, rows []store.RetryRow) {
	type group struct{ channel, status string }
	n := map[group]int{}
	for _, r := range rows {
		n[group{r.Channel, r.Status}]++
	}
	groups := make([]group, 0, len(n))
	for g := range n {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b group) int {
		return strings.Compare(a.channel+"\x00"+a.status, b.channel+"\x00"+b.status)
	})
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHANNEL\tSTATUS\tDELIVERIES")
	for _, g := range groups {
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", g.channel, g.status, n[g])
	}
	tw.Flush()
}

// retryIDs queues the retryable ones of ids again and names the others.
func retryIDs(ctx context.Context, a *app, ids []int64, o retryOptions) error {
	e := a.env
	statuses, err := a.st.DeliveryStatuses(ctx, ids)
	if err != nil {
		return err
	}
	var ok []int64
	for _, id := range ids {
		switch st, found := statuses[id]; {
		case !found:
			fmt.Fprintf(e.stderr, "delivery %d does not exist: not queued\n", id)
		case !store.Retryable(st):
			fmt.Fprintf(e.stderr, "delivery %d is %s, not unknown, failed or expired: not queued\n", id, st)
		default:
			ok = append(ok, id)
		}
	}
	if o.dryRun {
		fmt.Fprintf(e.stdout, "dry run: %d of %d deliveries would be queued again; nothing was queued\n", len(ok), len(ids))
		if len(ok) < len(ids) {
			return fmt.Errorf("%d of %d deliveries cannot be queued again (see above)", len(ids)-len(ok), len(ids))
		}
		return nil
	}
	return a.requeue(ctx, ok, len(ids), o.deadline)
}

// requeue queues ids again and reports it; asked is how many deliveries
// the operator meant, so fewer queued is a failure.
func (a *app) requeue(ctx context.Context, ids []int64, asked int, deadline time.Duration) error {
	e := a.env
	until := e.now().Add(deadline)
	n, err := a.st.Requeue(ctx, ids, until)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(e.stdout, "queued none of %d deliveries again\n", asked)
	} else {
		fmt.Fprintf(e.stdout, "queued %d of %d deliveries again; they may be sent until %s\n", n, asked, until.UTC().Format("2006-01-02 15:04:05 UTC"))
		if _, alive, err := a.st.Alive(ctx, "server"); err == nil && !alive {
			fmt.Fprintln(e.stdout, "no crier serve is running on this database: start it to send them")
		}
	}
	switch {
	case int(n) < len(ids):
		return fmt.Errorf("%d of them changed status since they were read and were not queued (crier log shows them now)", len(ids)-int(n))
	case int(n) < asked:
		return fmt.Errorf("%d of %d deliveries were not queued (see above)", asked-int(n), asked)
	}
	return nil
}

// confirm asks question at a terminal and reports whether the answer was
// yes. Without a terminal on stdin it refuses: the caller says --yes.
func (e *env) confirm(question string) (bool, error) {
	in := e.stdin
	if in == nil {
		in = os.Stdin
	}
	if !e.terminal(in) {
		return false, errors.New("nothing was queued: crier asks before queuing deliveries again and stdin is not a terminal; add --yes to queue them")
	}
	fmt.Fprint(e.stderr, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// terminal reports whether r is a terminal (env.isTerminal replaces the
// check in tests).
func (e *env) terminal(r io.Reader) bool {
	if e.isTerminal != nil {
		return e.isTerminal(r)
	}
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
