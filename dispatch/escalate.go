package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// Escalator follows up triggers that ask for acknowledgement: it stops
// when the quorum is reached, and otherwise takes each recipient who has
// not acknowledged up their ladder, one rung at a time, and tells the
// deputy audience once the ladder is used up. Every rung is a delivery on
// the same trigger, linked (escalates_id) to the delivery it escalates,
// with a delivery_events entry saying why; everything it decides is in the
// database, so Tick may run in any process, any number of times.
//
// A rung's message is rendered afresh for its channel from the same
// template event (open → alert, update → update, resolve → resolve) with
// the incident as it is now: a late reader should get the current state,
// and each channel asks for acknowledgement in its own way (an email
// carries the link, not "reply ACK"). A broadcast's rung is its message
// event, with the subject and text of the message being escalated.
type Escalator struct {
	st  EscalationStore
	p   *Planner
	log *slog.Logger
}

// EscalatorOptions configure an Escalator.
type EscalatorOptions struct {
	Log *slog.Logger
}

// NewEscalator builds an escalator that plans rungs with p.
func NewEscalator(st EscalationStore, p *Planner, o EscalatorOptions) *Escalator {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Escalator{st: st, p: p, log: o.Log}
}

// TickResult counts what one Tick did.
type TickResult struct {
	// Policies is how many open policies were looked at.
	Policies int `json:"policies"`
	// Met, Escalated and Closed count the policies that changed state.
	Met       int `json:"met"`
	Escalated int `json:"escalated"`
	Closed    int `json:"closed"`
	// Rungs is how many escalation deliveries were planned, Deputies how
	// many deputy audiences were told.
	Rungs    int `json:"rungs"`
	Deputies int `json:"deputies"`
	// Suppressed is how many queued escalations an acknowledgement made
	// unnecessary.
	Suppressed int `json:"suppressed"`
	// TriggerIDs are the triggers that got new deliveries.
	TriggerIDs []int64 `json:"trigger_ids,omitempty"`
}

// Tick looks at every open policy as of now. Each policy is settled in
// its own transaction, so one that cannot be (a template that fails) is
// reported and does not hold up the others.
func (e *Escalator) Tick(ctx context.Context, now time.Time) (TickResult, error) {
	var res TickResult
	list, err := e.st.ActiveAckPolicies(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, pol := range list {
		res.Policies++
		var one TickResult
		err := e.st.Write(ctx, func(tx *store.Tx) error {
			one = TickResult{}
			return e.settle(tx, pol.TriggerID, now, &one)
		})
		if err != nil {
			e.log.Error("escalation failed", "trigger", pol.TriggerKey, "err", err)
			errs = append(errs, fmt.Errorf("escalate %s: %w", pol.TriggerKey, err))
			continue
		}
		res.Met += one.Met
		res.Escalated += one.Escalated
		res.Closed += one.Closed
		res.Rungs += one.Rungs
		res.Deputies += one.Deputies
		res.Suppressed += one.Suppressed
		res.TriggerIDs = append(res.TriggerIDs, one.TriggerIDs...)
	}
	return res, errors.Join(errs...)
}

// rung is one person's next step: the delivery escalated and why.
type rung struct {
	from int64
	why  string
}

// settle brings one policy up to date as of now.
func (e *Escalator) settle(tx *store.Tx, triggerID int64, now time.Time, res *TickResult) error {
	pol, err := tx.AckPolicy(triggerID)
	if err != nil || pol.State != store.AckOpen {
		return err
	}
	dels, err := tx.AckDeliveries(triggerID)
	if err != nil {
		return err
	}
	acks, err := tx.Acks(triggerID)
	if err != nil {
		return err
	}
	people := askees(dels)
	need := pol.Quorum
	if need == 0 || need > len(people) {
		need = len(people)
	}
	got := 0
	for _, r := range people {
		if _, ok := acks[r.id]; ok {
			got++
		}
	}
	// Rungs still queued for people who have acknowledged are not needed.
	var stale []int64
	for _, d := range dels {
		if _, ok := acks[d.SubscriberID]; ok && d.EscalatesID != 0 && d.Status == store.StatusQueued {
			stale = append(stale, d.ID)
		}
	}
	n, err := tx.SuppressQueued(stale, "ack_received", "acknowledged before this escalation was sent")
	if err != nil {
		return err
	}
	res.Suppressed += n

	var inc *incidents.Incident
	if pol.IncidentID != "" {
		if inc, err = tx.Incident(pol.IncidentID); err != nil {
			return err
		}
	}
	switch {
	case len(people) == 0:
		res.Closed++
		return e.stop(tx, pol, dels, store.AckClosed, "nobody_asked", "nobody could be asked", res)
	case got >= need:
		res.Met++
		return e.stop(tx, pol, dels, store.AckMet, "ack_received", fmt.Sprintf("%d of %d acknowledged: quorum reached", got, len(people)), res)
	case inc != nil && !inc.ResolvedAt.IsZero() && inc.ResolvedAt.After(pol.PlannedAt):
		res.Closed++
		return e.stop(tx, pol, dels, store.AckClosed, "incident_resolved", "the incident was resolved", res)
	}

	// Only the people whose turn has come are looked at further.
	whys := map[string]string{}
	pending := 0 // people still climbing or waiting
	var due []*askee
	for _, r := range people {
		if _, ok := acks[r.id]; ok {
			continue
		}
		if whys[r.id] = r.why(pol, now); whys[r.id] == "" {
			pending++
			continue
		}
		due = append(due, r)
	}
	if len(due) == 0 {
		return nil // nothing is due: the state cannot change either
	}
	subs, err := tx.SubscribersByID(ids(due))
	if err != nil {
		return err
	}
	next := map[string]map[string]rung{} // channel → subscriber → rung
	var exhausted []*askee
	for _, r := range due {
		why := whys[r.id]
		ch := nextRung(pol.Ladder, r, subs[r.id], e.p.kinds)
		if ch == "" {
			exhausted = append(exhausted, r)
			continue
		}
		pending++
		if next[ch] == nil {
			next[ch] = map[string]rung{}
		}
		next[ch][r.id] = rung{from: r.latest().ID, why: why}
	}
	for _, ch := range slices.Sorted(maps.Keys(next)) {
		k, err := e.planRungs(tx, pol, inc, dels, ch, next[ch], now)
		if err != nil {
			return err
		}
		res.Rungs += k
	}
	if len(next) > 0 {
		res.TriggerIDs = append(res.TriggerIDs, pol.TriggerID)
	}
	deputyDone := pol.Deputy == ""
	if !deputyDone {
		_, told, err := tx.TriggerByKey(store.DeputyKey(pol.TriggerKey))
		if err != nil {
			return err
		}
		deputyDone = told
		if !told && len(exhausted) > 0 {
			id, err := e.tellDeputy(tx, pol, inc, dels, people, acks, exhausted)
			if err != nil {
				return err
			}
			res.Deputies++
			res.TriggerIDs = append(res.TriggerIDs, id)
			deputyDone = true
		}
	}
	if pending == 0 && deputyDone {
		res.Escalated++
		return tx.SetAckState(pol.TriggerID, store.AckEscalated)
	}
	return nil
}

// stop ends a policy: every escalation still queued, and the deputy's
// message if it is still queued, is suppressed with reason.
func (e *Escalator) stop(tx *store.Tx, pol store.AckPolicy, dels []store.AckDelivery, state, reason, detail string, res *TickResult) error {
	var queued []int64
	for _, d := range dels {
		if d.EscalatesID != 0 && d.Status == store.StatusQueued {
			queued = append(queued, d.ID)
		}
	}
	if tr, ok, err := tx.TriggerByKey(store.DeputyKey(pol.TriggerKey)); err != nil {
		return err
	} else if ok {
		dd, err := tx.AckDeliveries(tr.ID)
		if err != nil {
			return err
		}
		for _, d := range dd {
			if d.Status == store.StatusQueued {
				queued = append(queued, d.ID)
			}
		}
	}
	n, err := tx.SuppressQueued(queued, reason, detail+" before this escalation was sent")
	if err != nil {
		return err
	}
	res.Suppressed += n
	return tx.SetAckState(pol.TriggerID, state)
}

// escalationEvent is the template event for re-rendering a trigger.
func escalationEvent(pol store.AckPolicy) string {
	if pol.TriggerKind != "incident" {
		return templates.EventMessage
	}
	switch pol.TriggerName {
	case "open":
		return templates.EventAlert
	case "resolve":
		return templates.EventResolve
	}
	return templates.EventUpdate
}

// planRungs plans the next rung on channel ch for the people in who, all
// in one pass over the subscribers, and records why on both deliveries.
func (e *Escalator) planRungs(tx *store.Tx, pol store.AckPolicy, inc *incidents.Incident, dels []store.AckDelivery, ch string,
	who map[string]rung, now time.Time) (int, error) {
	critical := slices.ContainsFunc(dels, func(d store.AckDelivery) bool { return d.Priority >= 2 })
	event := escalationEvent(pol)
	// A broadcast's rungs carry the text being escalated; people who got
	// different texts (another language) are planned in separate passes.
	type source struct{ subject, body string }
	groups := map[source][]string{}
	for sub, r := range who {
		var src source
		if event == templates.EventMessage {
			var err error
			if src.subject, src.body, err = sourceText(tx, r.from, sendSubject(pol)); err != nil {
				return 0, err
			}
		}
		groups[src] = append(groups[src], sub)
	}
	// A rung carries the alert rule of the delivery it escalates: whoever
	// it reaches was told by that rule, and hears its follow-ups.
	from := make([]int64, 0, len(who))
	for _, r := range who {
		from = append(from, r.from)
	}
	rules, err := tx.DeliveryRules(from)
	if err != nil {
		return 0, err
	}
	enq, err := tx.Enqueuer(pol.TriggerID)
	if err != nil {
		return 0, err
	}
	defer enq.Close()
	status := map[string]string{}
	for src, subs := range groups {
		slices.Sort(subs)
		req := Request{Key: pol.TriggerKey, Kind: pol.TriggerKind, Name: pol.TriggerName, Incident: inc, Critical: critical,
			Subject: src.subject, Body: src.body, triggerID: pol.TriggerID, ackDue: now.Add(pol.Within),
			Ack:     &AckPolicy{Within: pol.Within, Quorum: pol.Quorum, Ladder: pol.Ladder, Deputy: pol.Deputy},
			Targets: []Target{{Channels: []string{ch}, Event: event, selector: &subscribers.Selector{IDs: subs}}}}
		err := e.p.each(tx, req, now, "", func(j *planJob, _ templates.Rendered, renderErr error) error {
			if renderErr != nil {
				return renderErr
			}
			nd := &j.nd
			nd.IncidentID = pol.IncidentID
			nd.EscalatesID = who[nd.SubscriberID].from
			nd.Rule = rules[nd.EscalatesID]
			nd.Ack = nd.Status != store.StatusSuppressed
			status[nd.SubscriberID] = nd.Status
			return enq.Add(nd)
		})
		if err != nil {
			return 0, err
		}
	}
	if err := enq.Flush(); err != nil {
		return 0, err
	}
	n := 0
	for _, sub := range slices.Sorted(maps.Keys(who)) {
		r := who[sub]
		id, err := tx.DeliveryID(pol.TriggerID, sub, ch)
		if err != nil {
			return n, err
		}
		if id == 0 {
			continue // no longer a subscriber: nothing was planned
		}
		n++
		if err := tx.AddEvent(id, status[sub], "escalation", "escalated: "+r.why); err != nil {
			return n, err
		}
		if err := tx.AddEvent(r.from, "escalated", "escalated", fmt.Sprintf("escalated to %s (delivery %d): %s", ch, id, r.why)); err != nil {
			return n, err
		}
		e.log.Info("acknowledgement escalated", "trigger", pol.TriggerKey, "subscriber", sub, "channel", ch, "delivery", id, "why", r.why)
	}
	return n, nil
}
