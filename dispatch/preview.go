package dispatch

import (
	"context"
	"errors"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// Preview is one message a subscriber would get, rendered but not stored.
type Preview struct {
	Subscriber string             `json:"subscriber"`
	Locale     string             `json:"locale"`
	Channel    string             `json:"channel"`
	Kind       string             `json:"kind"`
	Address    string             `json:"address"`
	Status     string             `json:"status"`
	Reason     string             `json:"reason,omitempty"`
	Detail     string             `json:"detail,omitempty"`
	Subject    string             `json:"subject,omitempty"`
	Text       string             `json:"text,omitempty"`
	HTML       string             `json:"html,omitempty"`
	Encoding   templates.Encoding `json:"encoding,omitempty"`
	Segments   int                `json:"segments,omitempty"`
	// Rule is the alert rule the message comes from (incident events).
	Rule string `json:"rule,omitempty"`
	// FollowUp is set when the subscriber gets (or is not sent) this
	// message because an earlier delivery about the incident on Rule
	// reached them, not because the audience selects them now.
	FollowUp bool `json:"follow_up,omitempty"`
}

// Preview renders what req would send, to the subscribers keep accepts,
// without writing anything.
func (p *Planner) Preview(ctx context.Context, st Writer, req Request, keep func(subscriberID string) bool) ([]Preview, error) {
	if err := p.check(req); err != nil {
		return nil, err
	}
	var out []Preview
	err := p.dryRun(ctx, st, req, func(j *planJob, r templates.Rendered) error {
		if keep != nil && !keep(j.nd.SubscriberID) {
			return nil
		}
		out = append(out, preview(j, r))
		return nil
	})
	return out, err
}

func preview(j *planJob, r templates.Rendered) Preview {
	nd := &j.nd
	return Preview{Subscriber: nd.SubscriberID, Locale: j.locale, Channel: nd.Channel, Kind: nd.Kind, Address: nd.Address, Status: nd.Status,
		Reason: nd.Reason, Detail: nd.Detail, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Encoding: r.Encoding, Segments: r.Segments,
		Rule: nd.Rule, FollowUp: j.followUp}
}

// Price is what one SMS segment costs on a channel.
type Price struct {
	PerSegment float64
	Currency   string
}

// Preflight is what a trigger would do, before it is sent: who gets what
// over which channel and in which language, who would not be told and why,
// one rendered sample per channel × language, and the SMS bill.
type Preflight struct {
	Recipients int                          `json:"recipients"` // distinct subscribers with at least one message
	Messages   int                          `json:"messages"`
	Channels   map[string]*ChannelPreflight `json:"channels"`
	Suppressed []Preview                    `json:"suppressed"` // without bodies
	Deferred   []Preview                    `json:"deferred"`   // quiet hours, without bodies
	// FollowUps are the messages to people the audience does not select
	// now, sent because an earlier delivery about the incident reached
	// them (an update or the resolution), without bodies. Those of them
	// who will not be told are in Suppressed, with the reason.
	FollowUps     []Preview `json:"follow_ups"`
	Samples       []Preview `json:"samples"` // one per channel × language
	TotalSegments int       `json:"total_segments"`
	EstimatedCost float64   `json:"estimated_cost"`
	Currency      string    `json:"currency,omitempty"`
}

// ChannelPreflight is one channel's share of a pre-flight.
type ChannelPreflight struct {
	Kind          string         `json:"kind"`
	Messages      int            `json:"messages"`
	ByLocale      map[string]int `json:"by_locale"`
	Suppressed    int            `json:"suppressed"`
	FollowUps     int            `json:"follow_ups,omitempty"` // of Messages, those to people told before (see Preflight.FollowUps)
	Segments      int            `json:"segments,omitempty"`
	EstimatedCost float64        `json:"estimated_cost,omitempty"`
	Currency      string         `json:"currency,omitempty"`
}

// Preflight renders what req would send, streaming (nothing is written,
// nothing is held per recipient but the suppressed and deferred lists).
func (p *Planner) Preflight(ctx context.Context, st Writer, req Request, prices map[string]Price) (Preflight, error) {
	if err := p.check(req); err != nil {
		return Preflight{}, err
	}
	pf := Preflight{Channels: map[string]*ChannelPreflight{}, Suppressed: []Preview{}, Deferred: []Preview{}, FollowUps: []Preview{}, Samples: []Preview{}}
	people := map[string]bool{}
	sampled := map[string]bool{}
	err := p.dryRun(ctx, st, req, func(j *planJob, r templates.Rendered) error {
		nd, locale := &j.nd, j.locale
		cp := pf.Channels[nd.Channel]
		if cp == nil {
			cp = &ChannelPreflight{Kind: nd.Kind, ByLocale: map[string]int{}}
			pf.Channels[nd.Channel] = cp
		}
		if nd.Status == store.StatusSuppressed {
			cp.Suppressed++
			pf.Suppressed = append(pf.Suppressed, preview(j, templates.Rendered{}))
			return nil
		}
		if nd.Reason == "quiet_hours" {
			pf.Deferred = append(pf.Deferred, preview(j, templates.Rendered{}))
		}
		if j.followUp {
			cp.FollowUps++
			pf.FollowUps = append(pf.FollowUps, preview(j, templates.Rendered{}))
		}
		people[nd.SubscriberID] = true
		pf.Messages++
		cp.Messages++
		cp.ByLocale[locale]++
		if r.Segments > 0 {
			cp.Segments += r.Segments
			pf.TotalSegments += r.Segments
			if pr, ok := prices[nd.Channel]; ok {
				c := float64(r.Segments) * pr.PerSegment
				cp.EstimatedCost += c
				cp.Currency = pr.Currency
				pf.EstimatedCost += c
				pf.Currency = pr.Currency
			}
		}
		if k := nd.Channel + "/" + locale; !sampled[k] {
			sampled[k] = true
			pf.Samples = append(pf.Samples, preview(j, r))
		}
		return nil
	})
	pf.Recipients = len(people)
	return pf, err
}

// dryRun renders what req would plan and hands each delivery to fn, inside
// a transaction that is always rolled back: nothing is written.
func (p *Planner) dryRun(ctx context.Context, st Writer, req Request, fn func(*planJob, templates.Rendered) error) error {
	errRollback := errors.New("dry run: roll back")
	err := st.Write(ctx, func(tx *store.Tx) error {
		err := p.each(tx, req, p.now(), "", func(j *planJob, r templates.Rendered, renderErr error) error {
			if renderErr != nil {
				return renderErr
			}
			return fn(j, r)
		})
		if err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}
