package store

import "fmt"

// Reached is one earlier delivery about an incident that reached (or is
// on its way to) a subscriber, as EachReached reports it: the alert rule
// that planned it, the subscriber, and the channel it went over.
type Reached struct {
	Rule         string
	SubscriberID string
	Channel      string
	Kind         string
}

// reachedQuery reads the earlier deliveries that count as having reached
// their subscriber, for an incident's follow-ups (updates and the
// resolution: who was told hears the end). Counted: queued (waiting to go, quiet hours included),
// sending, sent and delivered; unknown (the process died mid-send: the
// provider may well have it); expired (every attempt failed temporarily
// or the deadline passed, but a "maybe sent" attempt on a resend channel
// may have arrived, and a superfluous all-clear costs far less than a
// missing one); and suppressed with reason capped, whose text went into
// the subscriber's digest. Not counted: failed (the provider refused it
// or reported it undelivered, or it could not be rendered: nothing
// reached the person, and the same address would fail again) and every
// other suppression (nothing was sent, by policy).
//
// The conditions that incident_id and rule are not empty repeat the
// deliveries_rule index's own, so that SQLite sees the partial index applies.
const reachedQuery = `SELECT DISTINCT subscriber_id, rule, channel, kind FROM deliveries
	WHERE incident_id = ? AND incident_id != '' AND rule != '' AND trigger_id != ?
	AND (status IN ('queued', 'sending', 'sent', 'delivered', 'unknown', 'expired') OR (status = 'suppressed' AND reason = 'capped'))
	ORDER BY subscriber_id, rule, channel`

// EachReached calls fn for every distinct (rule, subscriber, channel) of
// the deliveries about incidentID that were planned by an alert rule and
// reached their subscriber (see reachedQuery), leaving out those of the
// trigger exceptTrigger (the one being planned; 0 for none). Rows come in
// subscriber, rule and channel order. One query, on the deliveries_rule
// index.
func (t *Tx) EachReached(incidentID string, exceptTrigger int64, fn func(Reached) error) error {
	rows, err := t.query(reachedQuery, incidentID, exceptTrigger)
	if err != nil {
		return fmt.Errorf("store: deliveries that reached people about %s: %w", incidentID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Reached
		if err := rows.Scan(&r.SubscriberID, &r.Rule, &r.Channel, &r.Kind); err != nil {
			return fmt.Errorf("store: scan a delivery about %s: %w", incidentID, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DeliveryRules returns the alert rule of each of the deliveries ids (those
// planned by no rule, or missing, are left out): an escalation rung carries
// the rule of the delivery it escalates.
func (t *Tx) DeliveryRules(ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 500) // far below any engine's limit on bound parameters
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		rows, err := t.tx.QueryContext(t.ctx, `SELECT id, rule FROM deliveries WHERE rule != '' AND id IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: rules of deliveries: %w", err)
		}
		for rows.Next() {
			var id int64
			var rule string
			if err := rows.Scan(&id, &rule); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: rules of deliveries: %w", err)
			}
			out[id] = rule
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: rules of deliveries: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}
