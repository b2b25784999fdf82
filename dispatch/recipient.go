package dispatch

import (
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// recipients builds each recipient's template data for one trigger,
// sharing whatever recipients have in common.
type recipients struct {
	req  Request
	now  time.Time
	base templates.Data
	// briefings: every incident, when each subscriber was last briefed, and
	// the view of the incidents per "last briefed" time.
	briefing bool
	list     []*incidents.Incident
	last     map[string]time.Time
	views    map[int64]briefingViewResult
	// the per-subscriber data the withheld variant was made from
	withheldOf  *templates.Data
	withheldFor *templates.Data
}

type briefingViewResult struct{ active, resolved []templates.Incident }

func (p *Planner) newRecipients(tx *store.Tx, req Request, base templates.Data, now time.Time) (*recipients, error) {
	rc := &recipients{req: req, now: now, base: base, briefing: req.Kind == "briefing", views: map[int64]briefingViewResult{}}
	if !rc.briefing {
		return rc, nil
	}
	var err error
	if rc.list, err = tx.Incidents(false); err != nil {
		return nil, err
	}
	if rc.last, err = tx.LastBriefed(req.Name); err != nil {
		return nil, err
	}
	return rc, nil
}

// sinceKey is the render-group part that a briefing's content depends on.
func (rc *recipients) sinceKey(s *subscribers.Subscriber) int64 {
	if !rc.briefing {
		return 0
	}
	return rc.last[s.ID].UnixMilli()
}

// data is s's template data, with times and dates in loc.
func (rc *recipients) data(s *subscribers.Subscriber, loc *time.Location) *templates.Data {
	d := rc.base
	d.RecipientID, d.RecipientName, d.RecipientLocale, d.RecipientTimeZone = s.ID, s.Name, s.Locale, s.TimeZone
	d.RecipientNations = s.Nations
	if !rc.req.NextBriefing.IsZero() {
		d.NextBriefingAt = rc.req.NextBriefing.In(loc)
		d.NextBriefing = templates.FormatTime(d.NextBriefingAt, s.Locale)
	}
	if inc := rc.req.Incident; inc != nil && !inc.NextUpdateAt.IsZero() {
		d.NextUpdateAt = inc.NextUpdateAt.In(loc)
		d.NextUpdate = templates.FormatTime(d.NextUpdateAt, s.Locale)
	}
	if rc.briefing {
		since := rc.last[s.ID]
		v, ok := rc.views[since.UnixMilli()]
		if !ok {
			v.active, v.resolved = briefingView(rc.list, since, rc.now)
			rc.views[since.UnixMilli()] = v
		}
		d.Incidents, d.Resolved = v.active, v.resolved
		if !since.IsZero() {
			d.PreviousBriefing = templates.FormatTime(since.In(loc), s.Locale)
		}
		d.Incidents = withNextUpdate(d.Incidents, rc.list, loc, s.Locale)
	}
	d.Marking = highestMarking(&d)
	return &d
}

// withNextUpdate fills each incident's NextUpdate in the recipient's zone.
func withNextUpdate(list []templates.Incident, src []*incidents.Incident, loc *time.Location, locale string) []templates.Incident {
	var out []templates.Incident
	for i, inc := range list {
		for _, s := range src {
			if s.ID == inc.IncidentID && !s.NextUpdateAt.IsZero() {
				if out == nil {
					out = append([]templates.Incident(nil), list...)
				}
				out[i].NextUpdateAt = s.NextUpdateAt.In(loc)
				out[i].NextUpdate = templates.FormatTime(out[i].NextUpdateAt, locale)
			}
		}
	}
	if out == nil {
		return list
	}
	return out
}

// forChannel returns the data to render for a channel cleared up to max:
// d itself, or (when d carries more sensitive text) a copy with that text
// withheld, made once per recipient.
func (rc *recipients) forChannel(s *subscribers.Subscriber, d *templates.Data, max incidents.Marking) (*templates.Data, bool) {
	if max == "" {
		max = incidents.Official
	}
	if incidents.Marking(d.Marking).Rank() <= max.Rank() {
		return d, false
	}
	if rc.withheldOf != d {
		w := withhold(*d, s.Locale)
		rc.withheldOf, rc.withheldFor = d, &w
	}
	return rc.withheldFor, true
}

// capCounter knows how many messages each subscriber already has on each
// capped channel in its window, plus those planned now.
type capCounter struct{ counts map[string]map[string]int }

func (p *Planner) capCounts(tx *store.Tx, req Request, now time.Time) (*capCounter, error) {
	cc := &capCounter{counts: map[string]map[string]int{}}
	if req.Critical {
		return cc, nil
	}
	for _, t := range req.Targets {
		for _, ch := range t.Channels {
			r := p.channels[ch]
			if r.CapMax == 0 || cc.counts[ch] != nil {
				continue
			}
			m, err := tx.RecentCounts(ch, now.Add(-r.CapWindow))
			if err != nil {
				return nil, err
			}
			cc.counts[ch] = m
		}
	}
	return cc, nil
}

// over reports whether one more message would take the subscriber over
// max on channel, and counts it when it would not.
func (cc *capCounter) over(channel, subscriber string, max int) bool {
	m := cc.counts[channel]
	if m == nil {
		m = map[string]int{}
		cc.counts[channel] = m
	}
	if m[subscriber] >= max {
		return true
	}
	m[subscriber]++
	return false
}
