package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
)

func incidentCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "incident", Short: "Open, update, resolve and list incidents"}
	cmd.AddCommand(incidentChangeCmd(e, "open"), incidentChangeCmd(e, "update"), incidentChangeCmd(e, "resolve"),
		incidentListCmd(e), incidentShowCmd(e))
	return cmd
}

func incidentChangeCmd(e *env, kind string) *cobra.Command {
	var c incidents.Change
	var impacts []string
	var wait time.Duration
	var asJSON bool
	var nextUpdate string
	cmd := &cobra.Command{
		Use:   kind + map[string]string{"open": "", "update": " ID", "resolve": " ID"}[kind],
		Short: map[string]string{"open": "Open an incident and alert its audiences", "update": "Post an update to an incident", "resolve": "Resolve an incident"}[kind],
		Example: map[string]string{
			"open":    `  crier incident open --title "111 clinical system down" --severity critical --impact "Referrals@wales=outage:phone the duty clinician"`,
			"update":  `  crier incident update INC-1 --status identified --text "Supplier confirms ransomware; systems isolated"`,
			"resolve": `  crier incident resolve INC-1 --text "Service restored in all four nations"`,
		}[kind],
		Args: func(cmd *cobra.Command, args []string) error {
			want := 1
			if kind == "open" {
				want = 0
			}
			if len(args) != want {
				if want == 0 {
					return usageError{fmt.Errorf("incident open takes no arguments, only flags (got %q)", strings.Join(args, " "))}
				}
				return usageError{fmt.Errorf("incident %s needs the incident ID, for example INC-1 (crier incident list shows them)", kind)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if nextUpdate != "" {
				t, err := parseWhen(nextUpdate, e.now())
				if err != nil {
					return usageError{fmt.Errorf("--next-update: %w", err)}
				}
				c.NextUpdateAt = t
			}
			for _, s := range impacts {
				im, err := incidents.ParseImpact(s)
				if err != nil {
					return usageError{fmt.Errorf("--impact: %w", err)}
				}
				c.Impacts = append(c.Impacts, im)
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				var res changeResult
				var err error
				if kind == "open" {
					res, err = a.OpenIncident(ctx, c)
				} else {
					res, err = a.ChangeIncident(ctx, args[0], kind, c)
				}
				if err != nil {
					return flagErrors(err)
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(res); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.stdout, "%s %s: %s [%s, %s]\n", res.Incident.ID, pastTense(kind), res.Incident.Title, res.Incident.Severity, res.Incident.Status)
					fmt.Fprintf(e.stdout, "planned %d deliveries (%d suppressed) under trigger %s\n", res.Outcome.Queued, res.Outcome.Suppressed, res.Outcome.Key)
				}
				if res.Outcome.TriggerID == 0 {
					return nil
				}
				return a.deliver(ctx, []int64{res.Outcome.TriggerID}, wait)
			})
		},
	}
	f := cmd.Flags()
	if kind != "resolve" {
		f.StringVar(&c.Title, "title", "", "one-line title")
		f.StringVar(&c.Severity, "severity", "", "critical, major or minor")
		f.StringVar(&c.Status, "status", "", "investigating, identified or monitoring")
		f.StringVar(&c.Summary, "summary", "", "a few sentences on what is happening")
		f.StringArrayVar(&impacts, "impact", nil, `service impact "Service@nation=status[:workaround]" (repeatable); status operational|degraded|outage|restored`)
		f.StringVar(&c.Marking, "marking", "", "protective marking of the incident (covers the summary): OFFICIAL or OFFICIAL-SENSITIVE")
		f.StringVar(&nextUpdate, "next-update", "", "when the next update is promised: a duration from now (2h) or a time (2026-11-25T17:00:00Z)")
	}
	f.StringVar(&c.TextMarking, "text-marking", "", "marking of this timeline entry (default: the incident's); OFFICIAL-SENSITIVE text is withheld from SMS and Slack")
	f.StringVar(&c.Text, "text", "", "the timeline entry")
	f.DurationVar(&wait, "wait", 2*time.Minute, "how long to keep retrying deliveries before leaving them to crier serve")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// flagErrors turns the field problems of an incident change into a usage
// error that names the command-line flags the operator typed.
func flagErrors(err error) error {
	l, ok := fields.AsList(err)
	if !ok {
		return err
	}
	lines := make([]string, len(l))
	for i, p := range l {
		flag := p.Path
		if j := strings.IndexAny(flag, ".["); j >= 0 {
			flag = flag[:j]
		}
		switch flag {
		case "impacts":
			flag = "impact"
		case "next_update_at":
			flag = "next-update"
		case "text_marking":
			flag = "text-marking"
		}
		msg := "--" + flag
		if p.Value != "" {
			msg += fmt.Sprintf(" %q", p.Value)
		}
		lines[i] = msg + ": " + p.Msg
	}
	return usageError{errors.New(strings.Join(lines, "\n"))}
}

// parseWhen reads a duration from now (2h) or an RFC 3339 time.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: give a duration like 2h or a time like 2026-11-25T17:00:00Z", v)
}

func pastTense(kind string) string {
	return map[string]string{"open": "opened", "update": "updated", "resolve": "resolved"}[kind]
}

func incidentListCmd(e *env) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List active incidents (--all for resolved ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				list, err := a.st.Incidents(ctx, !all)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(e.stdout).Encode(list)
				}
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSEVERITY\tSTATUS\tOPENED\tTITLE")
				for _, inc := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", inc.ID, inc.Severity, inc.Status, inc.OpenedAt.Local().Format("2006-01-02 15:04"), inc.Title)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include resolved incidents")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func incidentShowCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an incident: impacts and timeline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				inc, err := a.st.Incident(ctx, args[0])
				if err != nil {
					return flagErrors(err)
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(inc)
				}
				printIncident(e.stdout, inc)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printIncident(w io.Writer, inc *incidents.Incident) {
	fmt.Fprintf(w, "%s  %s\nseverity %s, status %s, marking %s, opened %s\n", inc.ID, inc.Title, inc.Severity, inc.Status, inc.Marking, inc.OpenedAt.Local().Format(time.DateTime))
	if !inc.NextUpdateAt.IsZero() {
		fmt.Fprintf(w, "next update due %s\n", inc.NextUpdateAt.Local().Format(time.DateTime))
	}
	if inc.Summary != "" {
		fmt.Fprintf(w, "\n%s\n", inc.Summary)
	}
	if len(inc.Impacts) > 0 {
		fmt.Fprintln(w, "\nImpact:")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, im := range inc.Impacts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", im.Service, im.Nation, im.Status, im.Workaround)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nTimeline:")
	for _, u := range inc.Timeline {
		mark := ""
		if u.Marking == incidents.OfficialSensitive {
			mark = " (OFFICIAL-SENSITIVE)"
		}
		fmt.Fprintf(w, "  #%d %s [%s]%s %s\n", u.Seq, u.At.Local().Format(time.DateTime), u.Status, mark, u.Text)
	}
}
