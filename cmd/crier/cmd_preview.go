package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/scheduler"
)

func previewCmd(e *env) *cobra.Command {
	var briefing, incidentID, event, subscriber string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Show what subscribers would receive for a briefing or an incident alert, per channel, without sending",
		Example: `  crier preview --briefing ministers-daily --subscriber minister-health
  crier preview --incident INC-1 --event update --subscriber dr-morgan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (briefing == "") == (incidentID == "") {
				return usageError{fmt.Errorf("give exactly one of --briefing NAME or --incident ID")}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				var req dispatch.Request
				if briefing != "" {
					b := a.cfg.Briefings[briefing]
					if b == nil {
						return usageError{fmt.Errorf("--briefing %q is not in the config (known: %v)", briefing, sortedKeys(a.cfg.Briefings))}
					}
					req = dispatch.Request{Key: "preview", Kind: "briefing", Name: briefing, BriefingName: b.Title,
						Targets: []dispatch.Target{{Audience: b.Audience, Channels: b.Channels, Event: b.Template}}}
					if s, err := scheduler.Parse(b.Schedule); err == nil && b.Schedule != "" {
						req.NextBriefing = s.Next(e.now())
					}
				} else {
					inc, err := a.st.Incident(ctx, incidentID)
					if err != nil {
						return err
					}
					u := inc.Timeline[len(inc.Timeline)-1]
					if event != "" {
						u = incidents.Update{Seq: u.Seq, Kind: event}
					}
					req = a.incidentRequest(inc, u)
					req.Key = "preview"
					if len(req.Targets) == 0 {
						fmt.Fprintf(e.stdout, "no alert rule sends %s events for a %s incident\n", u.Kind, inc.Severity)
						return nil
					}
				}
				var keep func(string) bool
				if subscriber != "" {
					keep = func(id string) bool { return id == subscriber }
				}
				list, err := a.planner.Preview(ctx, a.st, req, keep)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					for _, p := range list {
						if err := enc.Encode(p); err != nil {
							return err
						}
					}
					return nil
				}
				if len(list) == 0 {
					fmt.Fprintln(e.stdout, "(nobody would receive this)")
				}
				for _, p := range list {
					fmt.Fprintf(e.stdout, "=== %s via %s (%s) to %q: %s %s\n", p.Subscriber, p.Channel, p.Kind, p.Address, p.Status, p.Reason)
					if p.Detail != "" {
						fmt.Fprintf(e.stdout, "    %s\n", p.Detail)
					}
					if p.Segments > 0 {
						fmt.Fprintf(e.stdout, "    %s, %d segment(s)\n", p.Encoding, p.Segments)
					}
					if p.Subject != "" {
						fmt.Fprintf(e.stdout, "subject: %s\n", p.Subject)
					}
					if p.Text != "" {
						fmt.Fprintf(e.stdout, "%s\n", p.Text)
					}
					if p.HTML != "" {
						fmt.Fprintf(e.stdout, "--- html (%d bytes) ---\n", len(p.HTML))
					}
					fmt.Fprintln(e.stdout)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&briefing, "briefing", "", "briefing name")
	f.StringVar(&incidentID, "incident", "", "incident ID (uses its latest event unless --event)")
	f.StringVar(&event, "event", "", "open, update or resolve (with --incident)")
	f.StringVar(&subscriber, "subscriber", "", "only this subscriber")
	f.BoolVar(&asJSON, "json", false, "one JSON object per message")
	return cmd
}
