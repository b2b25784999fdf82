package dispatch

import (
	"context"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// AckReport is where one acknowledgement policy stands: who acknowledged
// (when, how), who has not, every rung of every person's escalation, and
// what is still to come. crier acks prints it.
type AckReport struct {
	IncidentID string    `json:"incident_id,omitempty"`
	Trigger    string    `json:"trigger"`
	PlannedAt  time.Time `json:"planned_at"`
	Within     string    `json:"within"`
	DueAt      time.Time `json:"due_at"`
	// Quorum is the policy's (0: everyone); Needed is what that means here.
	Quorum       int      `json:"quorum"`
	Needed       int      `json:"needed"`
	Acknowledged int      `json:"acknowledged"`
	QuorumMet    bool     `json:"quorum_met"`
	State        string   `json:"state"`
	Ladder       []string `json:"ladder"`
	Deputy       string   `json:"deputy,omitempty"`
	// DeputyTrigger and DeputyDeliveries are the message to the deputy
	// audience, once it has been planned.
	DeputyTrigger    string              `json:"deputy_trigger,omitempty"`
	DeputyToldAt     time.Time           `json:"deputy_told_at,omitzero"`
	DeputyDeliveries []store.AckDelivery `json:"deputy_deliveries,omitempty"`
	Recipients       []AckRecipient      `json:"recipients"`
}

// AckRecipient is one person asked to acknowledge.
type AckRecipient struct {
	Subscriber   string     `json:"subscriber"`
	Name         string     `json:"name,omitempty"`
	Acknowledged bool       `json:"acknowledged"`
	Ack          *store.Ack `json:"ack,omitempty"`
	// Rungs are their deliveries in order: the original ones first, then
	// each escalation with why it was made.
	Rungs []store.AckDelivery `json:"rungs"`
	// DeputyToldAt is when the deputy audience was told about them.
	DeputyToldAt time.Time `json:"deputy_told_at,omitzero"`
	// Pending is the next escalation ("clinician-email", "deputy
	// deputies") and NextAt when it is due; empty when nothing more will
	// happen.
	Pending string    `json:"pending,omitempty"`
	NextAt  time.Time `json:"next_at,omitzero"`
}

// Report describes every acknowledgement policy of an incident's triggers
// as of now, oldest first. It reads only.
func (e *Escalator) Report(ctx context.Context, incidentID string, now time.Time) ([]AckReport, error) {
	pols, err := e.st.AckPolicies(ctx, incidentID)
	if err != nil {
		return nil, err
	}
	out := []AckReport{}
	for _, pol := range pols {
		r, err := e.report(ctx, pol, now)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *Escalator) report(ctx context.Context, pol store.AckPolicy, now time.Time) (AckReport, error) {
	rep := AckReport{IncidentID: pol.IncidentID, Trigger: pol.TriggerKey, PlannedAt: pol.PlannedAt, Within: shortDuration(pol.Within),
		DueAt: pol.DueAt, Quorum: pol.Quorum, State: pol.State, Ladder: pol.Ladder, Deputy: pol.Deputy, Recipients: []AckRecipient{}}
	if rep.Ladder == nil {
		rep.Ladder = []string{}
	}
	dels, err := e.st.AckDeliveries(ctx, pol.TriggerID)
	if err != nil {
		return rep, err
	}
	acks, err := e.st.Acks(ctx, pol.TriggerID)
	if err != nil {
		return rep, err
	}
	told, err := e.st.DeputyTold(ctx, pol.TriggerID)
	if err != nil {
		return rep, err
	}
	tr, deputyPlanned, err := e.st.TriggerByKey(ctx, store.DeputyKey(pol.TriggerKey))
	if err != nil {
		return rep, err
	}
	if deputyPlanned {
		rep.DeputyTrigger, rep.DeputyToldAt = tr.Key, tr.CreatedAt
		if rep.DeputyDeliveries, err = e.st.AckDeliveries(ctx, tr.ID); err != nil {
			return rep, err
		}
	}
	people := askees(dels)
	subs, err := e.st.SubscribersByID(ctx, ids(people))
	if err != nil {
		return rep, err
	}
	rep.Needed = pol.Quorum
	if rep.Needed == 0 || rep.Needed > len(people) {
		rep.Needed = len(people)
	}
	for _, p := range people {
		r := AckRecipient{Subscriber: p.id, Name: subs[p.id].Name, DeputyToldAt: told[p.id]}
		for _, level := range p.levels {
			r.Rungs = append(r.Rungs, level...)
		}
		if a, ok := acks[p.id]; ok {
			r.Acknowledged, r.Ack = true, &a
			rep.Acknowledged++
		} else if pol.State == store.AckOpen {
			r.Pending, r.NextAt = e.pending(pol, p, subs[p.id], now, deputyPlanned)
		}
		rep.Recipients = append(rep.Recipients, r)
	}
	rep.QuorumMet = rep.Needed > 0 && rep.Acknowledged >= rep.Needed
	return rep, nil
}

// pending is the next escalation of someone who has not acknowledged, and
// when it is due (now, when it is due already and waits for the next tick).
func (e *Escalator) pending(pol store.AckPolicy, p *askee, s subscribers.Subscriber, now time.Time, deputyPlanned bool) (string, time.Time) {
	// The same deadline the escalator uses; none while the current rung
	// is held back (quiet hours): its clock has not started.
	at, waiting := p.dueAt(pol, len(p.levels)-1)
	if waiting {
		at = time.Time{}
	}
	if p.why(pol, now) != "" {
		at = now
	}
	if ch := nextRung(pol.Ladder, p, s, e.p.kinds); ch != "" {
		return ch, at
	}
	if pol.Deputy != "" && !deputyPlanned {
		return "deputy " + pol.Deputy, at
	}
	return "", time.Time{}
}
