package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	// Planning in chunks (see SetPlanning): the planner's lease, zero once
	// planning is complete; the last subscriber planned; the request.
	PlanUntil  time.Time
	PlanCursor string
	PlanSpec   string
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
	got, err := scanTrigger(t.queryRow(`SELECT `+triggerCols+` FROM triggers WHERE key=?`, tr.Key))
	if err != nil {
		return false, fmt.Errorf("store: read trigger %s: %w", tr.Key, err)
	}
	*tr = got
	return n == 1, nil
}

// SetPlanning records that the trigger's planning is unfinished: spec is
// the request needed to finish it, cursor the last subscriber whose
// deliveries are written, until the planner's lease. Another process
// finishes the plan only once the lease has run out.
func (t *Tx) SetPlanning(triggerID int64, spec, cursor string, until time.Time) error {
	_, err := t.exec(`UPDATE triggers SET plan_spec=CASE WHEN ?='' THEN plan_spec ELSE ? END, plan_cursor=?, plan_until=? WHERE id=?`,
		spec, spec, cursor, ms(until), triggerID)
	if err != nil {
		return fmt.Errorf("store: record planning of trigger %d: %w", triggerID, err)
	}
	return nil
}

// ErrPlanTaken means another process took over a plan whose lease had run
// out: it finishes the plan, and this planner must stop.
var ErrPlanTaken = errors.New("another crier process took over this plan after its lease ran out and is finishing it")

// AdvancePlanning records a committed chunk: the last subscriber planned
// and a new lease. held is the lease this planner last wrote; if the
// trigger no longer has it, another process has taken the plan over and
// ErrPlanTaken is returned.
func (t *Tx) AdvancePlanning(triggerID int64, cursor string, held, until time.Time) error {
	res, err := t.exec(`UPDATE triggers SET plan_cursor=?, plan_until=? WHERE id=? AND plan_until=?`, cursor, ms(until), triggerID, ms(held))
	if err != nil {
		return fmt.Errorf("store: record planning of trigger %d: %w", triggerID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrPlanTaken
	}
	return nil
}

// FinishPlanning marks the trigger's planning complete with n deliveries,
// if this planner (holding lease held) still has it; else ErrPlanTaken.
func (t *Tx) FinishPlanning(triggerID int64, n int, held time.Time) error {
	res, err := t.exec(`UPDATE triggers SET planned=?, plan_spec='', plan_cursor='', plan_until=0 WHERE id=? AND plan_until=?`, n, triggerID, ms(held))
	if err != nil {
		return fmt.Errorf("store: finish planning of trigger %d: %w", triggerID, err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return ErrPlanTaken
	}
	return nil
}

// CountPlanned counts the trigger's deliveries.
func (t *Tx) CountPlanned(triggerID int64) (int, error) {
	var n int
	err := t.queryRow(`SELECT COUNT(*) FROM deliveries WHERE trigger_id=?`, triggerID).Scan(&n)
	return n, err
}

// UnfinishedPlans lists triggers whose planning stopped part-way and whose
// planner's lease ran out before now: a process died while planning them.
func (s *Store) UnfinishedPlans(ctx context.Context, now time.Time) ([]Trigger, error) {
	trs, err := readTriggers(ctx, s.w, `WHERE plan_until != 0 AND plan_until < ? ORDER BY id`, ms(now))
	if err != nil {
		return nil, fmt.Errorf("store: unfinished plans: %w", err)
	}
	return trs, nil
}

// SubscriberLocales lists the distinct locales of all subscribers, each
// with the first subscriber (by id) who has it.
func (t *Tx) SubscriberLocales() ([][2]string, error) {
	// One index seek per locale rather than a scan of every subscriber.
	var out [][2]string
	for {
		var l, id string
		var err error
		if len(out) == 0 {
			err = t.queryRow(`SELECT locale, id FROM subscribers ORDER BY locale, id LIMIT 1`).Scan(&l, &id)
		} else {
			err = t.queryRow(`SELECT locale, id FROM subscribers WHERE locale > ? ORDER BY locale, id LIMIT 1`, out[len(out)-1][0]).Scan(&l, &id)
		}
		if errNoRows(err) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("store: subscriber locales: %w", err)
		}
		out = append(out, [2]string{l, id})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[1], b[1]) })
	return out, nil
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
	// Rule is the alert rule (or briefing) that planned it: an incident's
	// later events reach everyone a rule's earlier alerts reached.
	Rule string
}

// Enqueuer writes the deliveries of one trigger inside its transaction
// (Continue carries it into the next one, chunk by chunk), storing each
// distinct rendered body once. Rows are written in
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
	deliveryCols = 16
	// enqueueBatch rows of deliveryCols parameters stay far below
	// SQLite's limit on bound parameters.
	enqueueBatch = 64
)

// insertDeliveries is the INSERT for n rows of trigger, created at now.
func insertDeliveries(n int, trigger, now int64) string {
	row := fmt.Sprintf("(%d,%s,%d,%d)", trigger, placeholders(deliveryCols), now, now)
	return `INSERT INTO deliveries(trigger_id,subscriber_id,channel,kind,address,incident_id,message_id,priority,status,reason,detail,next_at,deadline,segments,ack,escalates_id,rule,created_at,updated_at)
		VALUES` + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + ` ON CONFLICT(trigger_id, subscriber_id, channel) DO NOTHING`
}

// Enqueuer prepares to write the deliveries of triggerID.
func (t *Tx) Enqueuer(triggerID int64) (*Enqueuer, error) {
	e := &Enqueuer{t: t, trigger: triggerID, bodies: map[[32]byte]int64{}, now: ms(t.s.now()),
		pending: make([]any, 0, enqueueBatch*deliveryCols)}
	if err := e.prepare(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Enqueuer) prepare() error {
	ins, err := e.t.tx.PrepareContext(e.t.ctx, insertDeliveries(enqueueBatch, e.trigger, e.now))
	if err != nil {
		return fmt.Errorf("store: prepare delivery insert: %w", err)
	}
	msgIns, err := e.t.tx.PrepareContext(e.t.ctx, `INSERT INTO messages(hash,subject,text,html,segments) VALUES(?,?,?,?,?)
		ON CONFLICT(hash) DO UPDATE SET hash=excluded.hash RETURNING id`)
	if err != nil {
		ins.Close()
		return fmt.Errorf("store: prepare message insert: %w", err)
	}
	e.ins, e.msgIns = ins, msgIns
	return nil
}

// Continue writes what is pending, commits the transaction (Tx.Continue)
// and prepares the Enqueuer's statements on the next one.
func (e *Enqueuer) Continue() error {
	if err := e.Flush(); err != nil {
		return err
	}
	e.Close()
	if err := e.t.Continue(); err != nil {
		return err
	}
	return e.prepare()
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
	ack := 0
	if d.Ack {
		ack = 1
	}
	e.pending = append(e.pending, d.SubscriberID, d.Channel, d.Kind, d.Address, d.IncidentID, msgID,
		d.Priority, d.Status, d.Reason, d.Detail, next, ms(d.Deadline), d.Segments, ack, d.EscalatesID, d.Rule)
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
		res, err = e.t.execUncached(insertDeliveries(len(e.pending)/deliveryCols, e.trigger, e.now), e.pending...)
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
