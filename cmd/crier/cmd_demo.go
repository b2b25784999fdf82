package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier"
	"github.com/crier-dev/crier/channels/sandbox"
	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
)

func demoCmd(e *env) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Replay a scripted incident on sandbox channels in a temporary database and show what everyone received",
		Long: `Replays a scripted incident (a cyber attack on a helpline supplier) against the example configuration
(or --config, if given), with every channel switched to the sandbox and a temporary database: nothing leaves
this machine. Prints what each audience received and the delivery log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, dir := crier.ExampleConfig, "."
			if cmd.Flags().Changed("config") {
				p := configPath(cmd)
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				raw = b
				dir, _ = absDir(p)
			}
			tmp, err := os.MkdirTemp("", "crier-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(tmp)
			}
			cfg, tmpl, err := parseConfig(raw, dir, e)
			if err != nil {
				return err
			}
			cfg.SetSQLitePath(filepath.Join(tmp, "demo.db"))
			cfg.Log.Level = "error"
			for _, ch := range cfg.Channels {
				k := ch.Kind()
				*ch = config.Channel{Driver: "sandbox", Limits: ch.Limits, Sandbox: &sandbox.Config{Kind: string(k)}}
			}
			a, err := buildApp(cmd.Context(), cfg, tmpl, e)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.runDemo(cmd.Context()); err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(e.stdout, "\nthe demo database is kept at %s\n", cfg.Store.Path)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary database afterwards")
	return cmd
}

func (a *app) runDemo(ctx context.Context) error {
	out := a.env.stdout
	step := func(title string) { fmt.Fprintf(out, "\n━━ %s\n", title) }
	var triggers []int64
	step("08:12  The helpline supplier reports a ransomware attack. An operator opens an incident.")
	open, err := a.OpenIncident(ctx, incidents.Change{
		Title: "Helpline clinical system unavailable (cyber attack on supplier)", Severity: "critical",
		Summary: "The supplier of the 111 clinical system has taken it offline after a ransomware attack. Referrals, ambulance dispatch links, out-of-hours booking and emergency prescriptions are affected.",
		Impacts: []incidents.Impact{
			{Service: "Referrals", Nation: "wales", Status: "outage", Workaround: "Phone the duty clinician; record NHS numbers on paper"},
			{Service: "Emergency prescriptions", Nation: "wales", Status: "outage", Workaround: "Use paper WP10 prescriptions"},
			{Service: "Out-of-hours booking", Nation: "england", Status: "degraded", Workaround: "Book by phone through the hub"},
			{Service: "Ambulance dispatch link", Nation: "northern-ireland", Status: "outage", Workaround: "Voice handover to control"},
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s opened: %d deliveries planned, %d suppressed\n", open.Incident.ID, open.Outcome.Queued, open.Outcome.Suppressed)
	triggers = append(triggers, open.Outcome.TriggerID)
	if err := a.deliver(ctx, triggers, time.Minute); err != nil {
		return err
	}

	step("10:40  The supplier isolates the affected systems. The operator posts an update.")
	upd, err := a.ChangeIncident(ctx, open.Incident.ID, "update", incidents.Change{Status: "identified",
		Text: "Supplier has isolated the affected systems; no evidence of patient data loss so far. Paper processes remain in force."})
	if err != nil {
		return err
	}
	triggers = append(triggers, upd.Outcome.TriggerID)
	if err := a.deliver(ctx, triggers[1:], time.Minute); err != nil {
		return err
	}

	step("17:00  The ministers' briefing goes out.")
	names := sortedKeys(a.cfg.Briefings)
	for _, n := range names {
		b, err := a.Brief(ctx, n, a.env.now().Truncate(time.Minute))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "briefing %s: %d deliveries planned\n", n, b.Queued)
		triggers = append(triggers, b.TriggerID)
		if err := a.deliver(ctx, []int64{b.TriggerID}, time.Minute); err != nil {
			return err
		}
	}

	step("What each channel kind delivered (one example of each)")
	seen := map[string]bool{}
	err = a.st.Log(ctx, store.LogFilter{TriggerIDs: triggers, WithBody: true}, func(le *store.LogEntry) error {
		k := le.Kind + "/" + le.Trigger
		if le.Status != store.StatusSent || seen[k] {
			return nil
		}
		seen[k] = true
		fmt.Fprintf(out, "\n[%s to %s, trigger %s]\n", le.Kind, le.Subscriber, le.Trigger)
		if le.Subject != "" {
			fmt.Fprintf(out, "Subject: %s\n", le.Subject)
		}
		fmt.Fprintln(out, le.Text)
		return nil
	})
	if err != nil {
		return err
	}

	step("The delivery log")
	if err := printLog(ctx, a.st, store.LogFilter{TriggerIDs: triggers}, out, false, false); err != nil {
		return err
	}
	counts, err := a.st.Counts(ctx, triggers)
	if err != nil {
		return err
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(out, "\ntotals:")
	for _, k := range keys {
		fmt.Fprintf(out, " %s %d", k, counts[k])
	}
	fmt.Fprintln(out)
	return nil
}
