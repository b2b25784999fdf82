package store

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Delivery statuses.
const (
	StatusQueued     = "queued"
	StatusSending    = "sending"
	StatusSent       = "sent"
	StatusDelivered  = "delivered"
	StatusFailed     = "failed"
	StatusExpired    = "expired"
	StatusSuppressed = "suppressed"
	StatusUnknown    = "unknown"
)

// Final reports whether a delivery in this status will not change without
// outside input (a provider receipt, an operator's retry).
func Final(status string) bool {
	switch status {
	case StatusQueued, StatusSending:
		return false
	}
	return true
}

// Trigger is one reason to send: a briefing occurrence, an incident event
// or a manual broadcast. Its Key makes planning idempotent.
type Trigger struct {
	ID         int64
	Key        string
	Kind       string // briefing, incident, send
	Name       string
	IncidentID string
	Planned    int
	CreatedAt  time.Time
}

// CreateTrigger inserts tr unless a trigger with the same key exists. It
// reports whether it created one; either way tr.ID is set.
func (t *Tx) CreateTrigger(tr *Trigger) (bool, error) {
	if tr.CreatedAt.IsZero() {
		tr.CreatedAt = t.s.now()
	}
	res, err := t.exec(`INSERT INTO triggers(key,kind,name,incident_id,created_at) VALUES(?,?,?,?,?) ON CONFLICT(key) DO NOTHING`,
		tr.Key, tr.Kind, tr.Name, tr.IncidentID, ms(tr.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("store: insert trigger %s: %w", tr.Key, err)
	}
	n, _ := res.RowsAffected()
	var created int64
	if err := t.queryRow(`SELECT id, planned, created_at FROM triggers WHERE key=?`, tr.Key).Scan(&tr.ID, &tr.Planned, &created); err != nil {
		return false, fmt.Errorf("store: read trigger %s: %w", tr.Key, err)
	}
	tr.CreatedAt = fromMS(created)
	return n == 1, nil
}

// SetPlanned records how many deliveries the trigger produced.
func (t *Tx) SetPlanned(triggerID int64, n int) error {
	_, err := t.exec(`UPDATE triggers SET planned=? WHERE id=?`, n, triggerID)
	return err
}

// NewDelivery is one planned delivery as the planner hands it to the store.
type NewDelivery struct {
	SubscriberID string
	Channel      string
	Kind         string
	Address      string
	IncidentID   string
	Priority     int
	Status       string // queued or suppressed
	Reason       string
	Detail       string
	Subject      string
	Text         string
	HTML         string
	Segments     int
	NextAt       time.Time
	Deadline     time.Time
	// Ack marks a delivery whose trigger asks for acknowledgement.
	Ack bool
	// EscalatesID is the delivery this one escalates (0: none).
	EscalatesID int64
}

// Enqueuer writes the deliveries of one trigger inside one transaction,
// storing each distinct rendered body once. Rows are written in
// multi-row INSERTs of enqueueBatch: a large broadcast spends its time in
// SQLite rather than in a round trip per row.
type Enqueuer struct {
	t       *Tx
	trigger int64
	ins     *sql.Stmt // enqueueBatch rows
	msgIns  *sql.Stmt
	bodies  map[[32]byte]int64
	now     int64
	written int
	pending []any // deliveryCols arguments per row not yet written
	// The previous body: most broadcasts hand the same rendered strings to
	// row after row, and comparing them is cheaper than hashing.
	lastSubject, lastText, lastHTML string
	lastMsg                         int64
}

const (
	// deliveryCols are the values bound per row; the trigger and the
	// creation time are the same for every row and are written into the
	// statement itself (binding is a good part of a large plan's cost).
	deliveryCols = 15
	// enqueueBatch rows of deliveryCols parameters stay far below
	// SQLite's limit on bound parameters.
	enqueueBatch = 64
)

// insertDeliveries is the INSERT for n rows of trigger, created at now.
func insertDeliveries(n int, trigger, now int64) string {
	row := fmt.Sprintf("(%d,%s,%d,%d)", trigger, placeholders(deliveryCols), now, now)
	return `INSERT INTO deliveries(trigger_id,subscriber_id,channel,kind,address,incident_id,message_id,priority,status,reason,detail,next_at,deadline,segments,ack,escalates_id,created_at,updated_at)
		VALUES` + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + ` ON CONFLICT(trigger_id, subscriber_id, channel) DO NOTHING`
}

// Enqueuer prepares to write the deliveries of triggerID.
func (t *Tx) Enqueuer(triggerID int64) (*Enqueuer, error) {
	now := ms(t.s.now())
	ins, err := t.tx.PrepareContext(t.ctx, insertDeliveries(enqueueBatch, triggerID, now))
	if err != nil {
		return nil, fmt.Errorf("store: prepare delivery insert: %w", err)
	}
	msgIns, err := t.tx.PrepareContext(t.ctx, `INSERT INTO messages(hash,subject,text,html,segments) VALUES(?,?,?,?,?)
		ON CONFLICT(hash) DO UPDATE SET hash=excluded.hash RETURNING id`)
	if err != nil {
		ins.Close()
		return nil, fmt.Errorf("store: prepare message insert: %w", err)
	}
	return &Enqueuer{t: t, trigger: triggerID, ins: ins, msgIns: msgIns, bodies: map[[32]byte]int64{}, now: now,
		pending: make([]any, 0, enqueueBatch*deliveryCols)}, nil
}

// Add queues one delivery for writing; it is written with the next full
// batch or by Flush. A delivery that already exists for the same trigger,
// subscriber and channel is left as it is.
func (e *Enqueuer) Add(d *NewDelivery) error {
	var msgID any
	if e.lastMsg != 0 && d.Text == e.lastText && d.Subject == e.lastSubject && d.HTML == e.lastHTML {
		msgID = e.lastMsg
	} else if d.Subject != "" || d.Text != "" || d.HTML != "" {
		h := sha256.New()
		h.Write([]byte(d.Subject))
		h.Write([]byte{0})
		h.Write([]byte(d.Text))
		h.Write([]byte{0})
		h.Write([]byte(d.HTML))
		var key [32]byte
		h.Sum(key[:0])
		id, ok := e.bodies[key]
		if !ok {
			if err := e.msgIns.QueryRowContext(e.t.ctx, key[:], d.Subject, d.Text, d.HTML, d.Segments).Scan(&id); err != nil {
				return fmt.Errorf("store: insert message body: %w", err)
			}
			e.bodies[key] = id
		}
		msgID = id
		e.lastSubject, e.lastText, e.lastHTML, e.lastMsg = d.Subject, d.Text, d.HTML, id
	}
	next := ms(d.NextAt)
	if next == 0 {
		next = e.now
	}
	e.pending = append(e.pending, d.SubscriberID, d.Channel, d.Kind, d.Address, d.IncidentID, msgID,
		d.Priority, d.Status, d.Reason, d.Detail, next, ms(d.Deadline), d.Segments, d.Ack, d.EscalatesID)
	if len(e.pending) == enqueueBatch*deliveryCols {
		return e.write(e.ins)
	}
	return nil
}

// Flush writes the deliveries Add has queued.
func (e *Enqueuer) Flush() error {
	if len(e.pending) == 0 {
		return nil
	}
	return e.write(nil)
}

// write inserts the pending rows, with st when it fits their number.
func (e *Enqueuer) write(st *sql.Stmt) error {
	var res sql.Result
	var err error
	if st != nil {
		res, err = st.ExecContext(e.t.ctx, e.pending...)
	} else {
		res, err = e.t.exec(insertDeliveries(len(e.pending)/deliveryCols, e.trigger, e.now), e.pending...)
	}
	if err != nil {
		return fmt.Errorf("store: insert deliveries of trigger %d: %w", e.trigger, err)
	}
	n, _ := res.RowsAffected()
	e.written += int(n)
	clear(e.pending) // let the rendered bodies go
	e.pending = e.pending[:0]
	return nil
}

// Written is the number of deliveries inserted so far (call Flush first
// to count every Add).
func (e *Enqueuer) Written() int { return e.written }

// Close releases the prepared statements. Deliveries not yet flushed are
// dropped.
func (e *Enqueuer) Close() error {
	e.ins.Close()
	return e.msgIns.Close()
}

// LastBriefed returns, per subscriber, when they were last sent the named
// briefing: the planning time of the latest briefing trigger with a
// delivery to them that was sent or delivered on any channel.
func (t *Tx) LastBriefed(name string) (map[string]time.Time, error) {
	rows, err := t.query(`SELECT d.subscriber_id, MAX(t.created_at) FROM triggers t JOIN deliveries d ON d.trigger_id = t.id
		WHERE t.kind = 'briefing' AND t.name = ? AND d.status IN ('sent', 'delivered') GROUP BY d.subscriber_id`, name)
	if err != nil {
		return nil, fmt.Errorf("store: last briefings of %s: %w", name, err)
	}
	return timesByID(rows)
}

// RecentCounts returns, per subscriber, how many deliveries on channel
// were planned since then and not suppressed or failed: what a
// per-subscriber cap counts.
func (t *Tx) RecentCounts(channel string, since time.Time) (map[string]int, error) {
	rows, err := t.query(`SELECT subscriber_id, COUNT(*) FROM deliveries WHERE channel = ? AND created_at >= ?
		AND status NOT IN ('suppressed', 'failed') GROUP BY subscriber_id`, channel, ms(since))
	if err != nil {
		return nil, fmt.Errorf("store: recent deliveries on %s: %w", channel, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// timesByID reads rows of (id, milliseconds) into a map, closing them.
func timesByID(rows *sql.Rows) (map[string]time.Time, error) {
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = fromMS(at)
	}
	return out, rows.Err()
}
