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

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
)

// Acknowledgements: wiring of the signer, the Slack buttons, the
// escalation loop and the acknowledgement routes, crier send's flags, and
// the crier acks command.

// escalateEvery is how often crier serve runs the escalator. An
// acknowledgement recorded by this server also wakes it at once.
const escalateEvery = 15 * time.Second

// ackSigner is the signer of acknowledgement tokens, or nil without
// webhooks.ack_secret (messages then carry no links or buttons).
func (a *app) ackSigner() *dispatch.AckSigner {
	w := a.cfg.Webhooks
	if !w.AckSecret.IsSet() {
		return nil
	}
	return dispatch.NewAckSigner(w.AckSecret.Reveal(), w.AckLinkTTL, a.cfg.Server.PublicURL)
}

// withAckButtons gives a Slack channel its Acknowledge buttons: clicked
// in Slack when the interaction webhook can be verified, a link to the
// confirm page otherwise.
func (a *app) withAckButtons(ch channels.Channel) channels.Channel {
	if a.acks == nil || ch.Kind() != channels.KindSlack {
		return ch
	}
	return dispatch.AckButtons(ch, a.st, a.acks, a.cfg.Webhooks.SlackSigningSecret.IsSet())
}

// ackOptions serves acknowledgement links and Slack clicks; each recorded
// acknowledgement wakes the escalation loop.
func (a *app) ackOptions(wake chan<- struct{}) *server.AckOptions {
	if a.acks == nil {
		return nil
	}
	return &server.AckOptions{Tokens: a.acks, Store: a.st, SlackSigningSecret: a.cfg.Webhooks.SlackSigningSecret, Now: a.env.now,
		Acked: func(int64) {
			select {
			case wake <- struct{}{}:
			default:
			}
		}}
}

// wakeOnReceipt makes a Twilio receipt that changed a delivery (an SMS
// came back undelivered) wake the escalation loop, so the next rung goes
// at once rather than at the next tick.
func wakeOnReceipt(o *server.TwilioOptions, wake chan<- struct{}) *server.TwilioOptions {
	if o == nil {
		return nil
	}
	prev := o.Notify
	o.Notify = func(id int64) {
		if prev != nil {
			prev(id)
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return o
}

// escalateLoop runs the escalator every escalateEvery, and when woken,
// until ctx ends.
func (a *app) escalateLoop(ctx context.Context, wake <-chan struct{}) {
	t := time.NewTicker(escalateEvery)
	defer t.Stop()
	for {
		if _, err := a.escalate(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("escalation", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// escalate runs the escalator once and wakes the dispatcher for whatever
// it planned.
func (a *app) escalate(ctx context.Context) (dispatch.TickResult, error) {
	res, err := a.esc.Tick(ctx, a.env.now())
	if len(res.TriggerIDs) > 0 {
		a.disp.Notify()
	}
	return res, err
}

// ackPolicy turns a config ack block into the planner's policy.
func ackPolicy(c *config.Ack) *dispatch.AckPolicy {
	if c == nil {
		return nil
	}
	return &dispatch.AckPolicy{Within: c.Within, Quorum: c.Quorum, Ladder: c.Escalate, Deputy: c.Deputy}
}

// ackFlags are crier send's acknowledgement flags.
type ackFlags struct {
	within   time.Duration
	quorum   int
	escalate string
	deputy   string
}

func (f *ackFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVar(&f.within, "ack-within", 0, "ask every recipient to acknowledge within this long (e.g. 15m), escalating when they do not")
	fs.IntVar(&f.quorum, "quorum", 0, "with --ack-within: how many acknowledgements are enough (0: everyone)")
	fs.StringVar(&f.escalate, "escalate", "", "with --ack-within: comma-separated channel instances to escalate along, in order")
	fs.StringVar(&f.deputy, "deputy", "", "with --ack-within: the audience told when someone's ladder is used up")
}

// apply puts the flags into r.
func (f *ackFlags) apply(r *sendRequest) error {
	if f.within == 0 {
		if f.quorum != 0 || f.escalate != "" || f.deputy != "" {
			return errors.New("--quorum, --escalate and --deputy need --ack-within: how long recipients have to acknowledge")
		}
		return nil
	}
	r.Ack = &config.Ack{Within: f.within, Quorum: f.quorum, Deputy: f.deputy}
	for _, c := range strings.Split(f.escalate, ",") {
		if c = strings.TrimSpace(c); c != "" {
			r.Ack.Escalate = append(r.Ack.Escalate, c)
		}
	}
	return nil
}

// sendAckProblems checks a broadcast's acknowledgement request the way
// the config checks an alert rule's.
func (a *app) sendAckProblems(c *config.Ack) []string {
	if c == nil {
		return nil
	}
	var out []string
	if c.Within < time.Minute {
		out = append(out, fmt.Sprintf("--ack-within %s is too short: give recipients at least 1m", c.Within))
	}
	if c.Quorum < 0 {
		out = append(out, fmt.Sprintf("--quorum %d: must be 0 (everyone) or more", c.Quorum))
	}
	for _, ch := range c.Escalate {
		if a.cfg.Channels[ch] == nil {
			out = append(out, fmt.Sprintf("--escalate: %q does not exist (known: %s)", ch, strings.Join(a.cfg.ChannelNames(), ", ")))
		}
	}
	if c.Deputy != "" && a.cfg.Audiences[c.Deputy] == nil {
		out = append(out, fmt.Sprintf("--deputy %q does not exist (known: %s)", c.Deputy, strings.Join(sortedKeys(a.cfg.Audiences), ", ")))
	}
	if a.acks == nil {
		out = append(out, "--ack-within needs webhooks.ack_secret in the config to sign acknowledgement links (a long random secret: openssl rand -hex 32)")
	}
	return out
}

func acksCmd(e *env) *cobra.Command {
	var incident string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "acks",
		Short: "Show who acknowledged an incident's messages, who has not, and what escalation is pending or done",
		Example: `  crier acks --incident INC-1
  crier acks --incident INC-1 --json | jq '.[0].recipients[] | select(.acknowledged | not)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if incident == "" {
				return usageError{errors.New("--incident is required (crier incident list shows the ids)")}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				reps, err := a.esc.Report(ctx, incident, e.now())
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(reps)
				}
				if len(reps) == 0 {
					fmt.Fprintf(e.stdout, "%s: no message about it asked for acknowledgement\n", incident)
					return nil
				}
				for i := range reps {
					printAckReport(e.stdout, &reps[i])
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&incident, "incident", "", "the incident id, for example INC-1")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (a list: one entry per message that asked for acknowledgement)")
	return cmd
}

// clock is a time as crier log prints it.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("01-02 15:04:05")
}

// printAckReport prints one policy for people.
func printAckReport(w io.Writer, r *dispatch.AckReport) {
	quorum := fmt.Sprintf("everyone (%d)", r.Needed)
	if r.Quorum > 0 {
		quorum = fmt.Sprintf("%d of %d", r.Needed, len(r.Recipients))
	}
	met := "not met"
	if r.QuorumMet {
		met = "met"
	}
	fmt.Fprintf(w, "%s  trigger %s, planned %s\n", r.IncidentID, r.Trigger, clock(r.PlannedAt))
	fmt.Fprintf(w, "  acknowledge within %s (due %s); quorum %s: %d acknowledged, %s; state %s\n", r.Within, clock(r.DueAt), quorum, r.Acknowledged, met, r.State)
	ladder := strings.Join(r.Ladder, " → ")
	if ladder == "" {
		ladder = "none"
	}
	deputy := "none"
	if r.Deputy != "" {
		deputy = r.Deputy + " (not told)"
		if !r.DeputyToldAt.IsZero() {
			deputy = fmt.Sprintf("%s (told %s: %s)", r.Deputy, clock(r.DeputyToldAt), deliveryCounts(r.DeputyDeliveries))
		}
	}
	fmt.Fprintf(w, "  ladder %s; deputy %s\n\n", ladder, deputy)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "  SUBSCRIBER\tACKNOWLEDGED\tDELIVERIES AND ESCALATIONS\tPENDING")
	for _, p := range r.Recipients {
		acked := "no"
		if p.Ack != nil {
			acked = fmt.Sprintf("%s by %s", clock(p.Ack.At), p.Ack.Via)
		}
		var rungs []string
		for _, d := range p.Rungs {
			s := fmt.Sprintf("%s %s %s", d.Channel, deliveryState(d), clock(d.CreatedAt))
			if d.Escalation != "" {
				s += " (" + d.Escalation + ")"
			}
			rungs = append(rungs, s)
		}
		if !p.DeputyToldAt.IsZero() {
			rungs = append(rungs, "deputy told "+clock(p.DeputyToldAt))
		}
		next := "-"
		if p.Pending != "" {
			next = p.Pending + " at " + clock(p.NextAt)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Subscriber, acked, strings.Join(rungs, " → "), next)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// deliveryState is a delivery's status with the provider's word on it.
func deliveryState(d store.AckDelivery) string {
	switch {
	case d.ProviderStatus != "" && d.ErrorCode != "":
		return fmt.Sprintf("%s (%s %s)", d.Status, d.ProviderStatus, d.ErrorCode)
	case d.Status == store.StatusSuppressed || d.Status == store.StatusFailed:
		if d.Reason != "" {
			return d.Status + " (" + d.Reason + ")"
		}
	}
	return d.Status
}

// deliveryCounts summarises deliveries by status ("2 sent, 1 suppressed").
func deliveryCounts(ds []store.AckDelivery) string {
	var order []string
	n := map[string]int{}
	for _, d := range ds {
		if n[d.Status] == 0 {
			order = append(order, d.Status)
		}
		n[d.Status]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
	}
	if len(parts) == 0 {
		return "no deliveries"
	}
	return strings.Join(parts, ", ")
}
