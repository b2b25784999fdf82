package store

import (
	"context"
	"fmt"
	"time"

	"github.com/crier-dev/crier/subscribers"
)

// Acknowledgement policy states. A policy is open until its quorum is met
// (met), or until every recipient who has not acknowledged has been taken
// up the whole ladder and the deputy audience told (escalated); closed
// means it was stopped for another reason (the incident was resolved).
// Acknowledgements are recorded whatever the state.
const (
	AckOpen      = "open"
	AckMet       = "met"
	AckEscalated = "escalated"
	AckClosed    = "closed"
)

// AckPolicy is one trigger's acknowledgement requirement.
type AckPolicy struct {
	TriggerID int64         `json:"trigger_id"`
	Within    time.Duration `json:"-"`
	// Quorum is how many acknowledgements are enough; 0 means everyone.
	Quorum int `json:"quorum"`
	// Ladder is the channel instances to escalate along, in order.
	Ladder []string `json:"ladder"`
	// Deputy is the audience told when the ladder is used up.
	Deputy   string    `json:"deputy,omitempty"`
	DueAt    time.Time `json:"due_at"`
	State    string    `json:"state"`
	ClosedAt time.Time `json:"closed_at,omitzero"`

	// Read from the trigger, not written by SetAckPolicy.
	TriggerKey  string    `json:"trigger"`
	TriggerKind string    `json:"trigger_kind"`
	TriggerName string    `json:"trigger_name,omitempty"`
	IncidentID  string    `json:"incident_id,omitempty"`
	PlannedAt   time.Time `json:"planned_at"`
}

// DeputyKey is the trigger key of the message that tells a deputy
// audience who has not acknowledged the trigger with key: one such
// trigger per policy, so planning it twice writes nothing.
func DeputyKey(triggerKey string) string { return "escalation:" + triggerKey + ":deputy" }

// SetAckPolicy stores p for its trigger unless one is stored already (the
// first plan of a trigger wins, like its deliveries).
func (t *Tx) SetAckPolicy(p AckPolicy) error {
	if p.State == "" {
		p.State = AckOpen
	}
	_, err := t.exec(`INSERT INTO ack_policies(trigger_id,within_ms,quorum,ladder,deputy,due_at,state) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(trigger_id) DO NOTHING`, p.TriggerID, p.Within.Milliseconds(), p.Quorum, joinList(p.Ladder), p.Deputy, ms(p.DueAt), p.State)
	if err != nil {
		return fmt.Errorf("store: save acknowledgement policy of trigger %d: %w", p.TriggerID, err)
	}
	return nil
}

const ackPolicyCols = `p.trigger_id, p.within_ms, p.quorum, p.ladder, p.deputy, p.due_at, p.state, p.closed_at,
	t.key, t.kind, t.name, t.incident_id, t.created_at`

func scanAckPolicies(ctx context.Context, q querier, where string, args ...any) ([]AckPolicy, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+ackPolicyCols+` FROM ack_policies p JOIN triggers t ON t.id=p.trigger_id WHERE `+where+` ORDER BY p.trigger_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read acknowledgement policies: %w", err)
	}
	defer rows.Close()
	var out []AckPolicy
	for rows.Next() {
		var p AckPolicy
		var within, due, closed, planned int64
		var ladder string
		if err := rows.Scan(&p.TriggerID, &within, &p.Quorum, &ladder, &p.Deputy, &due, &p.State, &closed,
			&p.TriggerKey, &p.TriggerKind, &p.TriggerName, &p.IncidentID, &planned); err != nil {
			return nil, fmt.Errorf("store: scan acknowledgement policy: %w", err)
		}
		p.Within = time.Duration(within) * time.Millisecond
		p.Ladder = splitList(ladder)
		p.DueAt, p.ClosedAt, p.PlannedAt = fromMS(due), fromMS(closed), fromMS(planned)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ActiveAckPolicies lists the policies still open, oldest first: the
// escalator's work list.
func (s *Store) ActiveAckPolicies(ctx context.Context) ([]AckPolicy, error) {
	return scanAckPolicies(ctx, s.r, `p.state=?`, AckOpen)
}

// AckPolicies lists the policies of the triggers about an incident.
func (s *Store) AckPolicies(ctx context.Context, incidentID string) ([]AckPolicy, error) {
	return scanAckPolicies(ctx, s.r, `t.incident_id=?`, incidentID)
}

// AckPolicy reads the policy of one trigger inside the transaction (a
// concurrent tick may have changed it since the work list was read).
func (t *Tx) AckPolicy(triggerID int64) (AckPolicy, error) {
	list, err := scanAckPolicies(t.ctx, t.tx, `p.trigger_id=?`, triggerID)
	if err != nil {
		return AckPolicy{}, err
	}
	if len(list) == 0 {
		return AckPolicy{}, fmt.Errorf("store: acknowledgement policy of trigger %d: %w", triggerID, ErrNotFound)
	}
	return list[0], nil
}

// SetAckState moves a policy to state (met, escalated or closed).
func (t *Tx) SetAckState(triggerID int64, state string) error {
	_, err := t.exec(`UPDATE ack_policies SET state=?, closed_at=? WHERE trigger_id=?`, state, ms(t.s.now()), triggerID)
	return err
}

// AckDelivery is one delivery of a trigger that asks for acknowledgement,
// as the escalator and crier acks see it.
type AckDelivery struct {
	ID             int64     `json:"id"`
	EscalatesID    int64     `json:"escalates,omitempty"`
	SubscriberID   string    `json:"subscriber"`
	Channel        string    `json:"channel"`
	Kind           string    `json:"kind"`
	Address        string    `json:"-"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	ProviderID     string    `json:"provider_id,omitempty"`
	ProviderStatus string    `json:"provider_status,omitempty"`
	ErrorCode      string    `json:"error_code,omitempty"`
	CreatedAt      time.Time `json:"at"`
	SentAt         time.Time `json:"sent_at,omitzero"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
	Priority       int       `json:"-"`
	// Escalation is why this delivery was planned, when it is a rung of
	// an escalation ("escalated: not acknowledged within 15m").
	Escalation string `json:"escalation,omitempty"`
}

// AckDeliveries lists every delivery of a trigger in id order, with why
// each escalation was made.
func (s *Store) AckDeliveries(ctx context.Context, triggerID int64) ([]AckDelivery, error) {
	return ackDeliveries(ctx, s.r, triggerID, true)
}

// AckDeliveries is the in-transaction form of Store.AckDeliveries, without
// the reasons for escalations (the escalator does not need them, and
// reading them costs a lookup per delivery).
func (t *Tx) AckDeliveries(triggerID int64) ([]AckDelivery, error) {
	return ackDeliveries(t.ctx, t.tx, triggerID, false)
}

func ackDeliveries(ctx context.Context, q querier, triggerID int64, why bool) ([]AckDelivery, error) {
	escalation := `''`
	if why {
		escalation = `COALESCE((SELECT e.detail FROM delivery_events e WHERE e.delivery_id=d.id AND e.reason='escalation' ORDER BY e.rowid LIMIT 1),'')`
	}
	rows, err := q.QueryContext(ctx, `SELECT d.id, d.escalates_id, d.subscriber_id, d.channel, d.kind, d.address, d.status, d.reason,
		d.provider_id, d.provider_status, d.error_code, d.created_at, d.sent_at, d.delivered_at, d.priority, `+escalation+`
		FROM deliveries d WHERE d.trigger_id=? ORDER BY d.id`, triggerID)
	if err != nil {
		return nil, fmt.Errorf("store: read deliveries of trigger %d: %w", triggerID, err)
	}
	defer rows.Close()
	var out []AckDelivery
	for rows.Next() {
		var d AckDelivery
		var created, sent, delivered int64
		if err := rows.Scan(&d.ID, &d.EscalatesID, &d.SubscriberID, &d.Channel, &d.Kind, &d.Address, &d.Status, &d.Reason,
			&d.ProviderID, &d.ProviderStatus, &d.ErrorCode, &created, &sent, &delivered, &d.Priority, &d.Escalation); err != nil {
			return nil, fmt.Errorf("store: scan delivery: %w", err)
		}
		d.CreatedAt, d.SentAt, d.DeliveredAt = fromMS(created), fromMS(sent), fromMS(delivered)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Ack is one person's standing acknowledgement of a trigger.
type Ack struct {
	SubscriberID string    `json:"subscriber"`
	DeliveryID   int64     `json:"delivery_id"`
	At           time.Time `json:"at"`
	Via          string    `json:"via"`
	Detail       string    `json:"detail,omitempty"`
}

// Acks returns the acknowledgements of a trigger by subscriber.
func (s *Store) Acks(ctx context.Context, triggerID int64) (map[string]Ack, error) {
	return readAcks(ctx, s.r, triggerID)
}

// Acks is the in-transaction form of Store.Acks.
func (t *Tx) Acks(triggerID int64) (map[string]Ack, error) { return readAcks(t.ctx, t.tx, triggerID) }

func readAcks(ctx context.Context, q querier, triggerID int64) (map[string]Ack, error) {
	rows, err := q.QueryContext(ctx, `SELECT subscriber_id, delivery_id, at, via, detail FROM acks WHERE trigger_id=?`, triggerID)
	if err != nil {
		return nil, fmt.Errorf("store: read acknowledgements of trigger %d: %w", triggerID, err)
	}
	defer rows.Close()
	out := map[string]Ack{}
	for rows.Next() {
		var a Ack
		var at int64
		if err := rows.Scan(&a.SubscriberID, &a.DeliveryID, &at, &a.Via, &a.Detail); err != nil {
			return nil, err
		}
		a.At = fromMS(at)
		out[a.SubscriberID] = a
	}
	return out, rows.Err()
}

// TriggerByKey reads a trigger by its key; ok is false when there is none.
func (t *Tx) TriggerByKey(key string) (tr Trigger, ok bool, err error) {
	return triggerWhere(t.ctx, t.tx, `key=?`, key)
}

// TriggerByKey is the read-pool form of Tx.TriggerByKey.
func (s *Store) TriggerByKey(ctx context.Context, key string) (Trigger, bool, error) {
	return triggerWhere(ctx, s.r, `key=?`, key)
}

func triggerWhere(ctx context.Context, q querier, where string, args ...any) (Trigger, bool, error) {
	tr, err := scanTrigger(q.QueryRowContext(ctx, `SELECT `+triggerCols+` FROM triggers WHERE `+where, args...))
	if errNoRows(err) {
		return tr, false, nil
	}
	if err != nil {
		return tr, false, fmt.Errorf("store: read trigger: %w", err)
	}
	return tr, true, nil
}

// triggerCols are the columns scanTrigger reads, in its order.
const triggerCols = `id, key, kind, name, incident_id, planned, created_at, plan_until, plan_cursor, plan_spec`

// scanTrigger reads one row of triggerCols.
func scanTrigger(row interface{ Scan(...any) error }) (Trigger, error) {
	var tr Trigger
	var created, until int64
	err := row.Scan(&tr.ID, &tr.Key, &tr.Kind, &tr.Name, &tr.IncidentID, &tr.Planned, &created, &until, &tr.PlanCursor, &tr.PlanSpec)
	tr.CreatedAt, tr.PlanUntil = fromMS(created), fromMS(until)
	return tr, err
}

// DeliveryID returns the id of the delivery of a trigger to a subscriber
// on a channel, or 0 when there is none.
func (t *Tx) DeliveryID(triggerID int64, subscriberID, channel string) (int64, error) {
	var id int64
	err := t.queryRow(`SELECT id FROM deliveries WHERE trigger_id=? AND subscriber_id=? AND channel=?`, triggerID, subscriberID, channel).Scan(&id)
	if errNoRows(err) {
		return 0, nil
	}
	return id, err
}

// DeliveryMessage returns the subject and text a delivery was rendered with.
func (t *Tx) DeliveryMessage(id int64) (subject, text string, err error) {
	err = t.queryRow(`SELECT COALESCE(m.subject,''), COALESCE(m.text,'') FROM deliveries d LEFT JOIN messages m ON m.id=d.message_id WHERE d.id=?`, id).
		Scan(&subject, &text)
	if errNoRows(err) {
		err = fmt.Errorf("store: delivery %d: %w", id, ErrNotFound)
	}
	return subject, text, err
}

// AddEvent appends one entry to a delivery's evidence trail without
// changing the delivery (an escalation it caused, a note).
func (t *Tx) AddEvent(deliveryID int64, status, reason, detail string) error {
	_, err := t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail) VALUES(?,?,?,?,?)`, deliveryID, ms(t.s.now()), status, reason, detail)
	if err != nil {
		return fmt.Errorf("store: record event of delivery %d: %w", deliveryID, err)
	}
	return nil
}

// SuppressQueued marks those of ids that are still queued as suppressed
// with reason and detail, each with its event, and returns how many it
// changed. A delivery already being sent, or sent, is left alone.
func (t *Tx) SuppressQueued(ids []int64, reason, detail string) (int, error) {
	n := 0
	now := ms(t.s.now())
	for _, id := range ids {
		res, err := t.exec(`UPDATE deliveries SET status='suppressed', reason=?, detail=?, next_at=0, updated_at=? WHERE id=? AND status='queued'`,
			reason, detail, now, id)
		if err != nil {
			return n, fmt.Errorf("store: suppress delivery %d: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
			if _, err := t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail) VALUES(?,?,'suppressed',?,?)`, id, now, reason, detail); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// SubscribersByID reads the named subscribers' names, addresses and
// opt-outs (the fields an escalation needs), by id; unknown ids are
// left out.
func (t *Tx) SubscribersByID(ids []string) (map[string]subscribers.Subscriber, error) {
	return subscribersByID(t.ctx, t.tx, ids)
}

// SubscribersByID is the read-pool form of Tx.SubscribersByID.
func (s *Store) SubscribersByID(ctx context.Context, ids []string) (map[string]subscribers.Subscriber, error) {
	return subscribersByID(ctx, s.r, ids)
}

func subscribersByID(ctx context.Context, q querier, ids []string) (map[string]subscribers.Subscriber, error) {
	out := map[string]subscribers.Subscriber{}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := q.QueryContext(ctx, `SELECT id, name, locale, timezone, phone, email, slack, opted_out FROM subscribers WHERE id IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: read subscribers: %w", err)
		}
		for rows.Next() {
			var s subscribers.Subscriber
			var opted string
			if err := rows.Scan(&s.ID, &s.Name, &s.Locale, &s.TimeZone, &s.Phone, &s.Email, &s.Slack, &opted); err != nil {
				rows.Close()
				return nil, err
			}
			s.OptedOut = splitList(opted)
			out[s.ID] = s
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeputyTold returns, per subscriber of a trigger, when a deputy audience
// was told that they had not acknowledged it.
func (s *Store) DeputyTold(ctx context.Context, triggerID int64) (map[string]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.subscriber_id, MIN(e.at) FROM delivery_events e JOIN deliveries d ON d.id=e.delivery_id
		WHERE d.trigger_id=? AND e.reason='deputy' GROUP BY d.subscriber_id`, triggerID)
	if err != nil {
		return nil, fmt.Errorf("store: read deputy escalations: %w", err)
	}
	return timesByID(rows)
}
