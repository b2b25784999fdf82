package dispatch

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// selection is the state of one pass of each over the subscribers: what
// every recipient of the trigger shares, and the render groups.
type selection struct {
	p        *Planner
	req      Request
	now      time.Time
	deadline time.Time
	priority int
	nations  []string // the nations the incident affects now
	optOuts  map[string]bool
	rc       *recipients
	caps     *capCounter
	fu       *followUps // nil unless a target follows up an incident
	pointers smsPointers
	order    []int // target indexes: those that can send first
	zones    map[string]*time.Location
	// Messages whose templates do not use the recipient's id or name are
	// rendered once per group of recipients who share everything else.
	groups map[renderGroup]*renderSlot
	// per subscriber, reused
	seen []string  // channels already planned for this subscriber
	jobs []planJob // the subscriber's deliveries, handed over together
}

// each selects every target's audience and renders one delivery per
// subscriber × channel, handing each to fn in subscriber order, from one
// goroutine. Rendering runs in parallel (see renderPipeline). A subscriber
// reached on the same channel through two targets gets the first target's
// message only; a target that can send comes before one that only records
// why it does not (Target.Withhold), so a withheld rule never hides
// another rule's message. A target that follows up an incident also
// selects those its rule reached before (see followUps); those of them
// who are no longer subscribers get their rows after everyone else.
func (p *Planner) each(tx *store.Tx, req Request, now time.Time, after string, fn func(j *planJob, r templates.Rendered, renderErr error) error) error {
	sel := &selection{p: p, req: req, now: now, deadline: p.deadline(req, now), zones: map[string]*time.Location{},
		groups: map[renderGroup]*renderSlot{}}
	var err error
	if sel.optOuts, err = tx.OptOuts(); err != nil {
		return err
	}
	base, err := p.baseData(tx, req, now)
	if err != nil {
		return err
	}
	sel.pointers = newSMSPointers(req, base)
	if req.Critical {
		sel.priority = 2
	} else if req.Incident != nil && req.Incident.Severity == incidents.Major {
		sel.priority = 1
	}
	if req.Incident != nil {
		sel.nations = req.Incident.Nations()
	}
	if sel.rc, err = p.newRecipients(tx, req, base, now); err != nil {
		return err
	}
	if sel.caps, err = p.capCounts(tx, req, now); err != nil {
		return err
	}
	if sel.fu, err = p.loadFollowUps(tx, req); err != nil {
		return err
	}
	for pass := range 2 {
		for i, t := range req.Targets {
			if (t.Withhold == "") == (pass == 0) {
				sel.order = append(sel.order, i)
			}
		}
	}
	pl := startPipeline(p.tmpl, func(j *planJob) error {
		var r templates.Rendered
		if j.slot != nil {
			if err := j.slot.err; err != nil {
				return fn(j, r, fmt.Errorf("plan %s: render %s %s for %s (locale %s): %w; nothing was sent", req.Key, j.event, j.nd.Kind, j.nd.SubscriberID, j.locale, err))
			}
			r = j.slot.fitted(p.channels[j.nd.Channel].MaxSegments, j.pointer)
			j.nd.Subject, j.nd.Text, j.nd.HTML, j.nd.Segments = r.Subject, r.Text, r.HTML, r.Segments
		}
		return fn(j, r, nil)
	})
	// hand passes the subscriber's deliveries to the pipeline.
	hand := func() error {
		for _, j := range sel.jobs {
			if !pl.add(j) {
				return errPlanStopped
			}
		}
		return nil
	}
	err = tx.EachSubscriberAfter(after, func(s *subscribers.Subscriber) error {
		sel.fu.met(s.ID)
		sel.subscriber(s)
		return hand()
	})
	if err == nil {
		for _, id := range sel.fu.gone() {
			sel.gone(id)
			if err = hand(); err != nil {
				break
			}
		}
	}
	if werr := pl.finish(); werr != nil {
		return werr // the writer's error is the cause when selection stopped
	}
	return err
}

// subscriber collects s's deliveries in sel.jobs: one per channel of every
// target that selects s, then one for each channel a rule no longer in the
// config reached s on.
func (sel *selection) subscriber(s *subscribers.Subscriber) {
	var data *templates.Data
	var loc *time.Location
	sel.seen, sel.jobs = sel.seen[:0], sel.jobs[:0]
	for _, i := range sel.order {
		t := &sel.req.Targets[i]
		matched := sel.matches(t, s)
		followed := !matched && sel.fu.told(t, s.ID)
		if !matched && !followed {
			continue
		}
		if data == nil {
			loc = zone(sel.zones, s.TimeZone)
			data = sel.rc.data(s, loc)
			sel.p.fillAck(data, sel.req, s, loc, sel.now)
		}
		for _, ch := range t.Channels {
			if slices.Contains(sel.seen, ch) {
				continue // the same subscriber × channel through another target
			}
			sel.seen = append(sel.seen, ch)
			j := sel.job(t, s, ch, data, loc)
			if followed {
				sel.fu.note(&j)
			}
			sel.jobs = append(sel.jobs, j)
		}
	}
	sel.jobs = sel.fu.orphans(s.ID, sel.jobs, &sel.seen, sel.req.Incident, sel.newJob)
	sel.pointers.set(sel.jobs)
}

// matches reports whether t's audience selects s now.
func (sel *selection) matches(t *Target, s *subscribers.Subscriber) bool {
	if t.FollowUpOnly || t.Withhold != "" {
		return false // only those the rule reached before
	}
	aud := sel.p.audiences[t.Audience].Selector
	if t.selector != nil {
		aud = *t.selector
	}
	if sel.req.Incident == nil {
		// Without an incident there are no affected nations to narrow
		// the audience by: everyone in it is meant.
		aud.IncidentNations = false
	}
	return aud.Match(s, sel.nations)
}

// newJob is a queued delivery of t's event to subscriber id on channel ch,
// not yet decided on.
func (sel *selection) newJob(t *Target, id, locale, address, ch string) planJob {
	return planJob{event: t.Event, locale: locale, nd: store.NewDelivery{SubscriberID: id, Channel: ch, Kind: string(sel.p.kinds[ch]),
		Address: address, Priority: sel.priority, Status: store.StatusQueued, Deadline: sel.deadline, Rule: t.Rule}}
}

// job decides one subscriber × channel of target t: suppressed and why, or
// queued (perhaps until quiet hours end) with what to render.
func (sel *selection) job(t *Target, s *subscribers.Subscriber, ch string, data *templates.Data, loc *time.Location) planJob {
	p, req := sel.p, &sel.req
	kind := p.kinds[ch]
	j := sel.newJob(t, s.ID, s.Locale, s.Address(kind), ch)
	nd := &j.nd
	rules := p.channels[ch]
	listed := sel.optOuts[string(kind)+":"+nd.Address]
	override := listed && req.Critical && p.criticalOverridesOptOut && !s.HasOptedOut(kind)
	switch {
	case t.Withhold != "":
		nd.Status, nd.Reason, nd.Detail = store.StatusSuppressed, t.Withhold, t.WithholdDetail
	case nd.Address == "":
		nd.Status, nd.Reason, nd.Detail = store.StatusSuppressed, "no_address", fmt.Sprintf("%s has no %s address", s.ID, kind)
	case s.HasOptedOut(kind) || listed && !override:
		nd.Status, nd.Reason, nd.Detail = store.StatusSuppressed, "opted_out", fmt.Sprintf("%s opted out of %s", s.ID, kind)
	case t.Fold:
		nd.Status, nd.Reason, nd.Detail = store.StatusSuppressed, "folded", "minor update: carried by the next briefing instead"
	default:
		// A message over the per-subscriber cap is still rendered:
		// PlanTx folds its text into the subscriber's digest.
		if rules.CapMax > 0 && !req.Critical && sel.caps.over(ch, s.ID, rules.CapMax) {
			nd.Status, nd.Reason = store.StatusSuppressed, "capped"
			nd.Detail = fmt.Sprintf("over %d messages per %s on %s", rules.CapMax, rules.CapWindow, ch)
		}
		d, withheld := sel.rc.forChannel(s, data, rules.MaxMarking)
		j.data, j.render = d, true
		if !p.personal(t.Event, kind, s.Locale, d) {
			g := renderGroup{event: t.Event, kind: kind, locale: s.Locale, zone: s.TimeZone, nations: strings.Join(s.Nations, ";"),
				since: sel.rc.sinceKey(s), withheld: withheld}
			if slot, ok := sel.groups[g]; ok {
				j.slot, j.render = slot, false
			} else if len(sel.groups) < maxRenderGroups {
				j.slot = &renderSlot{}
				sel.groups[g] = j.slot
			}
		}
		if s.QuietHours != nil && !req.Critical && nd.Status == store.StatusQueued {
			quietNow := sel.now
			if !req.resumedAt.IsZero() {
				quietNow = req.resumedAt
			}
			if end, ok := quietEnd(*s.QuietHours, quietNow, loc); ok {
				nd.NextAt, nd.Reason = end, "quiet_hours"
				nd.Detail = "deferred until quiet hours end at " + end.In(loc).Format("15:04 MST")
				if nd.Deadline.Before(end.Add(p.retry.Deadline)) {
					nd.Deadline = end.Add(p.retry.Deadline)
				}
			}
		}
	}
	if override && nd.Status == store.StatusQueued {
		nd.Reason = "opt_out_overridden"
		nd.Detail = fmt.Sprintf("%s opted out of %s; sent anyway: critical, and sms_replies.critical_overrides_opt_out is on", s.ID, kind)
	}
	return j
}

// gone collects in sel.jobs the rows of a subscriber an incident's earlier
// deliveries reached who is no longer a subscriber: suppressed, on every
// channel the follow-up would have used.
func (sel *selection) gone(id string) {
	sel.seen, sel.jobs = sel.seen[:0], sel.jobs[:0]
	inc := sel.req.Incident.ID
	for _, i := range sel.order {
		t := &sel.req.Targets[i]
		if !sel.fu.told(t, id) {
			continue
		}
		for _, ch := range t.Channels {
			if slices.Contains(sel.seen, ch) {
				continue
			}
			sel.seen = append(sel.seen, ch)
			j := sel.newJob(t, id, "", "", ch)
			j.followUp = true
			j.nd.Status, j.nd.Reason = store.StatusSuppressed, ReasonSubscriberRemoved
			j.nd.Detail = fmt.Sprintf("%s is no longer a subscriber; alert rule %s told them of %s before", id, t.Rule, inc)
			sel.jobs = append(sel.jobs, j)
		}
	}
	sel.jobs = sel.fu.orphans(id, sel.jobs, &sel.seen, sel.req.Incident, sel.newJob)
	for k := range sel.jobs {
		if nd := &sel.jobs[k].nd; nd.Reason == ReasonRuleRemoved {
			nd.Reason = ReasonSubscriberRemoved
			nd.Detail = fmt.Sprintf("%s is no longer a subscriber (and alert rule %s, which told them of %s before, is no longer in the config)", id, nd.Rule, inc)
		}
	}
}

// deadline is how long req's deliveries may still go out: retry.deadline
// after planning, except that a scheduled briefing has exactly its own
// window: it is sent until the next one is due (however long an outage
// lasts within it), and never once the next one is.
func (p *Planner) deadline(req Request, now time.Time) time.Time {
	if req.Kind == "briefing" && req.NextBriefing.After(now) {
		return req.NextBriefing
	}
	return now.Add(p.retry.Deadline)
}
