package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/server"
)

func previewCmd(e *env) *cobra.Command {
	var briefing, incidentID, event, subscriber string
	var asJSON, summary bool
	var send sendRequest
	var sendChannels []string
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Show what subscribers would receive for a briefing, an incident alert or a broadcast, without sending",
		Long: `Render what a trigger would send, without writing or sending anything. By default it prints every
message; --subscriber limits it to one person; --summary prints the pre-flight instead: recipients per channel
and language, who would not be told and why, one rendered sample per channel × language, and the total SMS
segments with the estimated cost (price_per_segment in the channel's config).

For an incident's update or resolution the recipients include everyone an earlier alert about the incident
reached, whatever the impact matrix selects now, marked "told before"; those who would not hear it are listed
with the reason. --event resolve shows what resolving the incident now would send, before you resolve it.`,
		Example: `  crier preview --briefing ministers-daily --subscriber minister-health
  crier preview --incident INC-1 --event resolve --summary
  crier preview --incident INC-1 --event update --subscriber dr-morgan
  crier preview --briefing ministers-daily --summary
  crier preview --audience clinicians --channels clinician-sms --body "Use paper prescriptions" --summary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			given := 0
			for _, v := range []string{briefing, incidentID, send.Audience} {
				if v != "" {
					given++
				}
			}
			if given != 1 {
				return usageError{fmt.Errorf("give exactly one of --briefing NAME, --incident ID or --audience NAME (a broadcast)")}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				send.Channels = sendChannels
				req, err := a.previewRequest(ctx, server.PreflightRequest{Briefing: briefing, Incident: incidentID, Event: event,
					Audience: send.Audience, Channels: send.Channels, Subject: send.Subject, Body: send.Body, Critical: send.Critical})
				if errors.Is(err, server.ErrBadRequest) {
					return usageError{err}
				}
				if err != nil {
					return err
				}
				if len(req.Targets) == 0 {
					fmt.Fprintln(e.stdout, "no alert rule sends this event for this incident: nobody would be told")
					return nil
				}
				if summary {
					pf, err := a.planner.Preflight(ctx, a.st, req, a.prices())
					if err != nil {
						return err
					}
					if asJSON {
						enc := json.NewEncoder(e.stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(pf)
					}
					printPreflight(e.stdout, pf)
					return nil
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
					fmt.Fprintf(e.stdout, "=== %s via %s (%s) to %q: %s %s%s\n", p.Subscriber, p.Channel, p.Kind, p.Address, p.Status, p.Reason, toldBefore(p))
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
	f.BoolVar(&asJSON, "json", false, "one JSON object per message (with --summary: the pre-flight as one JSON object)")
	f.BoolVar(&summary, "summary", false, "print the pre-flight: counts, suppressed recipients, samples, SMS segments and cost")
	f.StringVar(&send.Audience, "audience", "", "preview a broadcast to this audience (with --channels, --subject, --body)")
	f.StringSliceVar(&sendChannels, "channels", nil, "broadcast channels (comma-separated)")
	f.StringVar(&send.Subject, "subject", "", "broadcast subject")
	f.StringVar(&send.Body, "body", "", "broadcast text")
	f.BoolVar(&send.Critical, "critical", false, "preview the broadcast as critical (through quiet hours)")
	return cmd
}

func printPreflight(w io.Writer, pf dispatch.Preflight) {
	fmt.Fprintf(w, "Pre-flight: %d messages to %d recipients\n\n", pf.Messages, pf.Recipients)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tKIND\tMESSAGES\tBY LANGUAGE\tSUPPRESSED\tSMS SEGMENTS\tEST. COST")
	names := make([]string, 0, len(pf.Channels))
	for n := range pf.Channels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := pf.Channels[n]
		var langs []string
		for l, k := range c.ByLocale {
			langs = append(langs, fmt.Sprintf("%s %d", l, k))
		}
		sort.Strings(langs)
		seg, cost := "", ""
		if c.Segments > 0 {
			seg = fmt.Sprint(c.Segments)
			if c.Currency != "" {
				cost = fmt.Sprintf("%.2f %s", c.EstimatedCost, c.Currency)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", n, c.Kind, c.Messages, strings.Join(langs, ", "), c.Suppressed, seg, cost)
	}
	tw.Flush()
	if pf.TotalSegments > 0 {
		fmt.Fprintf(w, "\nTotal SMS segments: %d", pf.TotalSegments)
		if pf.Currency != "" {
			fmt.Fprintf(w, ", estimated cost %.2f %s", pf.EstimatedCost, pf.Currency)
		}
		fmt.Fprintln(w)
	}
	if len(pf.Suppressed) > 0 {
		fmt.Fprintf(w, "\nNot told (%d):\n", len(pf.Suppressed))
		for _, s := range pf.Suppressed {
			fmt.Fprintf(w, "  %-22s %-16s %-18s %s\n", s.Subscriber, s.Channel, s.Reason, s.Detail)
		}
	}
	if len(pf.FollowUps) > 0 {
		fmt.Fprintf(w, "\nTold before, so told again though the audience no longer selects them (%d):\n", len(pf.FollowUps))
		for _, s := range pf.FollowUps {
			fmt.Fprintf(w, "  %-22s %-16s alert rule %s\n", s.Subscriber, s.Channel, s.Rule)
		}
	}
	if len(pf.Deferred) > 0 {
		fmt.Fprintf(w, "\nDeferred by quiet hours (%d):\n", len(pf.Deferred))
		for _, s := range pf.Deferred {
			fmt.Fprintf(w, "  %-22s %-16s %s\n", s.Subscriber, s.Channel, s.Detail)
		}
	}
	for _, s := range pf.Samples {
		fmt.Fprintf(w, "\n=== sample: %s (%s), language %s\n", s.Channel, s.Kind, s.Locale)
		if s.Segments > 0 {
			fmt.Fprintf(w, "    %s, %d segment(s)\n", s.Encoding, s.Segments)
		}
		if s.Subject != "" {
			fmt.Fprintf(w, "subject: %s\n", s.Subject)
		}
		fmt.Fprintln(w, s.Text)
	}
}

// toldBefore marks a message to someone an earlier alert about the
// incident reached, whom the audience does not select now.
func toldBefore(p dispatch.Preview) string {
	if !p.FollowUp {
		return ""
	}
	return " [told before, by alert rule " + p.Rule + "]"
}
