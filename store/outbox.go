package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// claimOrder is what a claimed row needs beyond Claimed to be completed
// and put in claim order.
type claimOrder struct {
	trigger, msg int64
	prio         int
	next         int64
}

// completeClaimed fills in what the claimed rows' own columns do not
// hold: the trigger's key, the message body, and for a delivery about an
// incident its thread and the incident's state. It then sorts the rows in
// the claim's order (most urgent first), which RETURNING does not keep.
func (s *Store) completeClaimed(t *Tx, out []Claimed, order []claimOrder) error {
	msgIDs := make([]int64, len(out))
	var about []int64 // deliveries about an incident
	for i := range out {
		key, err := s.triggerKey(t, order[i].trigger)
		if err != nil {
			return err
		}
		out[i].TriggerKey = key
		out[i].Key = DeliveryKey(key, out[i].SubscriberID, out[i].Channel)
		msgIDs[i] = order[i].msg
		if out[i].IncidentID != "" {
			about = append(about, out[i].ID)
		}
	}
	if err := incidentDetails(t, out, about); err != nil {
		return err
	}
	bodies, err := s.bodies.get(t, msgIDs)
	if err != nil {
		return err
	}
	for i := range out {
		if b, ok := bodies[msgIDs[i]]; ok {
			out[i].Subject, out[i].Text, out[i].HTML, out[i].Segments = b.subject, b.text, b.html, b.segments
		}
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		oa, ob := order[a], order[b]
		switch {
		case oa.prio != ob.prio:
			return ob.prio - oa.prio
		case oa.next != ob.next:
			return cmp.Compare(oa.next, ob.next)
		}
		return cmp.Compare(out[a].ID, out[b].ID)
	})
	sorted := make([]Claimed, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	copy(out, sorted)
	return nil
}

// incidentDetails fills in, for the claimed deliveries about an incident
// (ids), the thread to reply in and the incident's current state, with
// one query for them all.
func incidentDetails(t *Tx, out []Claimed, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := t.query(`SELECT d.id, COALESCE(th.ref,''), COALESCE(i.title,''), COALESCE(i.severity,''), COALESCE(i.status,'')
		FROM deliveries d
		LEFT JOIN threads th ON th.incident_id=d.incident_id AND th.channel=d.channel AND th.address=d.address
		LEFT JOIN incidents i ON i.id=d.incident_id
		WHERE d.id IN (SELECT value FROM json_each(?))`, jsonIDs(ids))
	if err != nil {
		return fmt.Errorf("store: read claimed deliveries' incidents: %w", err)
	}
	defer rows.Close()
	at := make(map[int64]*Claimed, len(ids))
	for i := range out {
		at[out[i].ID] = &out[i]
	}
	for rows.Next() {
		var id int64
		var thread, title, severity, status string
		if err := rows.Scan(&id, &thread, &title, &severity, &status); err != nil {
			return err
		}
		if c := at[id]; c != nil {
			c.Thread, c.IncidentTitle, c.IncidentSeverity, c.IncidentStatus = thread, title, severity, status
		}
	}
	return rows.Err()
}

// triggerKey returns a trigger's key, which never changes, from a cache.
func (s *Store) triggerKey(t *Tx, id int64) (string, error) {
	s.keys.mu.Lock()
	key, ok := s.keys.m[id]
	s.keys.mu.Unlock()
	if ok {
		return key, nil
	}
	if err := t.queryRow(`SELECT key FROM triggers WHERE id=?`, id).Scan(&key); err != nil {
		return "", fmt.Errorf("store: read trigger %d: %w", id, err)
	}
	s.keys.mu.Lock()
	if s.keys.m == nil || len(s.keys.m) >= 1024 {
		s.keys.m = map[int64]string{}
	}
	s.keys.m[id] = key
	s.keys.mu.Unlock()
	return key, nil
}

// keyCache maps trigger ids to their keys.
type keyCache struct {
	mu sync.Mutex
	m  map[int64]string
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func jsonIDs(ids []int64) string {
	list := make([]byte, 0, len(ids)*8)
	list = append(list, '[')
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	return string(append(list, ']'))
}

// body is a stored message's content.
type body struct {
	subject, text, html string
	segments            int
}

// bodyCache keeps recently claimed message bodies. A message row is
// content-addressed and never changed or deleted, so an id always means
// the same body.
type bodyCache struct {
	mu sync.Mutex
	m  map[int64]body
}

// maxCachedBodies is above the largest claim, so personalised bodies of
// one claim do not empty the cache for the next.
const maxCachedBodies = 1024

// get returns the bodies of ids (0, no message, is skipped), reading the
// ones it does not hold through t.
func (c *bodyCache) get(t *Tx, ids []int64) (map[int64]body, error) {
	out := map[int64]body{}
	var missing []int64
	asked := map[int64]bool{}
	c.mu.Lock()
	for _, id := range ids {
		if id == 0 || asked[id] {
			continue
		}
		asked[id] = true
		if b, ok := c.m[id]; ok {
			out[id] = b
		} else {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := t.query(`SELECT id, subject, text, html, segments FROM messages WHERE id IN (SELECT value FROM json_each(?))`, jsonIDs(missing))
	if err != nil {
		return nil, fmt.Errorf("store: read message bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var b body
		if err := rows.Scan(&id, &b.subject, &b.text, &b.html, &b.segments); err != nil {
			return nil, err
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m)+len(missing) > maxCachedBodies {
		c.m = map[int64]body{}
	}
	for _, id := range missing {
		if b, ok := out[id]; ok {
			c.m[id] = b
		}
	}
	c.mu.Unlock()
	return out, nil
}

// Result is the outcome of one send attempt, or of a claim given back
// without one.
type Result struct {
	ID         int64
	Status     string // sent, queued (retry, or given back), failed, expired, unknown
	Reason     string
	Detail     string
	ProviderID string
	// Segments is the provider's count of the message's parts (Twilio's
	// num_segments), kept beside crier's own estimate from planning.
	Segments int
	NextAt   time.Time // for a retry
	// Uncount gives the attempt back (the channel was paused, the
	// recipient was not at fault). Only for a delivery claimed to send.
	Uncount bool
	// Thread, when set, is the thread reference to keep for the
	// delivery's incident, channel and address (first one wins, unless
	// OldThread names the reference it replaces: a new parent after the
	// old one was deleted).
	Thread, OldThread string
	// OptOut records the address as opted out (a provider said the
	// recipient had unsubscribed).
	OptOut bool
	// Holder is the process that claimed the delivery (DefaultHolder if
	// empty): a result from a process that no longer holds it is ignored.
	Holder string
}

// Record writes the outcomes of a batch of attempts in one transaction
// and releases the deliveries. A result for a delivery its holder no
// longer holds (its lease ran out and another process took it, or it was
// recovered after its holder was thought dead) is ignored.
func (s *Store) Record(ctx context.Context, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	return s.write(ctx, false, func(t *Tx) error { return t.record(results) })
}

// record writes the outcomes of attempts (see Record).
func (t *Tx) record(results []Result) error {
	now := ms(t.s.now())
	ev := eventWriter{t: t}
	// Most results only change the row: runs of them are written by one
	// statement. A thread or an opt-out also needs the row's address and
	// is written on its own. Results apply in order, so a second outcome
	// for the same delivery finds it no longer held; a run never holds
	// one delivery twice.
	var run []Result
	inRun := map[int64]bool{}
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		err := t.recordRun(run, now, &ev)
		run = run[:0]
		clear(inRun)
		return err
	}
	for _, r := range results {
		if r.Thread == "" && !r.OptOut {
			if inRun[r.ID] {
				if err := flush(); err != nil {
					return err
				}
			}
			run = append(run, r)
			inRun[r.ID] = true
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if err := t.recordOne(r, now, &ev); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return ev.flush()
}

// recordRun writes outcomes that change only their rows, and an event
// for each row that was still held. (One statement for the whole run,
// an UPDATE … FROM a JSON list, was measured slower in this SQLite than a
// prepared statement per row, and JSON cannot carry every byte a
// provider may answer with.)
func (t *Tx) recordRun(run []Result, now int64, ev *eventWriter) error {
	if t.s.eng.Name() == "postgres" {
		return t.recordRunArrays(run, now, ev)
	}
	const set = `UPDATE deliveries SET status=?, reason=?, detail=?, provider_id=CASE WHEN ?='' THEN provider_id ELSE ? END,
			provider_segments=CASE WHEN CAST(? AS BIGINT)=0 THEN provider_segments ELSE ? END, next_at=CASE WHEN CAST(? AS BIGINT)=0 THEN next_at ELSE ? END,
			attempts=attempts-?, lease_until=0, claimed_by='', updated_at=?, sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END
			WHERE id=? AND claimed_by=? AND status IN ('queued','sending')`
	for _, r := range run {
		uncount := 0
		if r.Uncount {
			uncount = 1
		}
		next := ms(r.NextAt)
		res, err := t.exec(set, r.Status, r.Reason, r.Detail, r.ProviderID, r.ProviderID, r.Segments, r.Segments, next, next, uncount, now, r.Status, now,
			r.ID, holderOr(r.Holder))
		if err != nil {
			return fmt.Errorf("store: record delivery %d: %w", r.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // no longer ours: another outcome won
		}
		if err := ev.add(r.ID, now, r.Status, r.Reason, r.Detail); err != nil {
			return err
		}
	}
	return nil
}

// recordRunArrays is recordRun in one statement on PostgreSQL, where each
// statement is a round trip to the server: the outcomes go as arrays,
// joined to the rows by id.
func (t *Tx) recordRunArrays(run []Result, now int64, ev *eventWriter) error {
	n := len(run)
	ids, segs, nexts, uncs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	statuses, reasons, details, pids, holders := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range run {
		ids[i], segs[i], nexts[i] = r.ID, int64(r.Segments), ms(r.NextAt)
		if r.Uncount {
			uncs[i] = 1
		}
		statuses[i], reasons[i], details[i], pids[i], holders[i] = r.Status, r.Reason, r.Detail, r.ProviderID, holderOr(r.Holder)
	}
	valid := func(v []string) []string { // PostgreSQL's text is UTF-8 (see Store.args)
		for i, x := range v {
			if !utf8.ValidString(x) {
				v[i] = validText(x)
			}
		}
		return v
	}
	rows, err := t.tx.tx.QueryContext(t.ctx, `UPDATE deliveries AS d SET status=v.status, reason=v.reason, detail=v.detail,
			provider_id=CASE WHEN v.pid='' THEN d.provider_id ELSE v.pid END,
			provider_segments=CASE WHEN v.seg=0 THEN d.provider_segments ELSE v.seg END,
			next_at=CASE WHEN v.next=0 THEN d.next_at ELSE v.next END,
			attempts=d.attempts-v.unc, lease_until=0, claimed_by='', updated_at=$1,
			sent_at=CASE WHEN v.status='sent' THEN $1 ELSE d.sent_at END
		FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
			AS v(id, status, reason, detail, pid, seg, next, unc, holder)
		WHERE d.id=v.id AND d.claimed_by=v.holder AND d.status IN ('queued','sending')
		RETURNING d.id`, now, ids, valid(statuses), valid(reasons), valid(details), valid(pids), segs, nexts, uncs, valid(holders))
	if err != nil {
		return fmt.Errorf("store: record %d outcomes: %w", n, err)
	}
	held := make(map[int64]bool, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		held[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range run {
		if held[r.ID] { // else no longer ours: another outcome won
			if err := ev.add(r.ID, now, r.Status, r.Reason, r.Detail); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordOne writes an outcome that also keeps a thread reference or an
// opt-out for the row's address.
func (t *Tx) recordOne(r Result, now int64, ev *eventWriter) error {
	uncount := 0
	if r.Uncount {
		uncount = 1
	}
	next := ms(r.NextAt)
	var inc, ch, kind, addr string
	err := t.queryRow(`UPDATE deliveries SET status=?, reason=?, detail=?, provider_id=CASE WHEN ?='' THEN provider_id ELSE ? END,
			provider_segments=CASE WHEN CAST(? AS BIGINT)=0 THEN provider_segments ELSE ? END, next_at=CASE WHEN CAST(? AS BIGINT)=0 THEN next_at ELSE ? END,
			attempts=attempts-?, lease_until=0, claimed_by='', updated_at=?, sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END
			WHERE id=? AND claimed_by=? AND status IN ('queued','sending')
			RETURNING incident_id, channel, kind, address`,
		r.Status, r.Reason, r.Detail, r.ProviderID, r.ProviderID, r.Segments, r.Segments, next, next, uncount, now, r.Status, now, r.ID, holderOr(r.Holder)).
		Scan(&inc, &ch, &kind, &addr)
	if errNoRows(err) {
		return nil // no longer ours: another outcome won
	}
	if err != nil {
		return fmt.Errorf("store: record delivery %d: %w", r.ID, err)
	}
	if err := ev.add(r.ID, now, r.Status, r.Reason, r.Detail); err != nil {
		return err
	}
	if r.Thread != "" && inc != "" {
		if r.OldThread != "" {
			if _, err := t.exec(`UPDATE threads SET ref=?, created_at=? WHERE incident_id=? AND channel=? AND address=? AND ref=?`,
				r.Thread, now, inc, ch, addr, r.OldThread); err != nil {
				return fmt.Errorf("store: record the new thread: %w", err)
			}
		}
		if _, err := t.exec(`INSERT INTO threads(incident_id,channel,address,ref,created_at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING`,
			inc, ch, addr, r.Thread, now); err != nil {
			return fmt.Errorf("store: record thread: %w", err)
		}
	}
	if r.OptOut && addr != "" {
		if err := t.OptOut(kind, addr, ch, "provider"); err != nil {
			return fmt.Errorf("store: record opt-out: %w", err)
		}
	}
	return nil
}

// eventWriter appends delivery_events rows in multi-row INSERTs: full
// batches of eventBatch rows, and the remainder in power-of-two pieces,
// so that every statement it runs is one of a few, each prepared once.
type eventWriter struct {
	t    *Tx
	args []any
}

const eventBatch = 64 // rows of 5 parameters per INSERT

// eventInserts[k] inserts 1<<k rows.
var eventInserts = func() []string {
	var out []string
	for n := 1; n <= eventBatch; n *= 2 {
		out = append(out, `INSERT INTO delivery_events(delivery_id,at,status,reason,detail) VALUES`+
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", n), ","))
	}
	return out
}()

func (w *eventWriter) add(id, at int64, status, reason, detail string) error {
	w.args = append(w.args, id, at, status, reason, detail)
	if len(w.args) == eventBatch*5 {
		return w.flush()
	}
	return nil
}

func (w *eventWriter) flush() error {
	for a := w.args; len(a) > 0; {
		k := len(eventInserts) - 1
		for (5 << k) > len(a) {
			k--
		}
		if _, err := w.t.exec(eventInserts[k], a[:5<<k]...); err != nil {
			return fmt.Errorf("store: record events: %w", err)
		}
		a = a[5<<k:]
	}
	w.args = w.args[:0]
	return nil
}

// ExpireOverdue marks queued deliveries whose deadline has passed as
// expired, so a briefing held up by an outage is not sent hours late. A
// delivery a process holds is left to it.
func (s *Store) ExpireOverdue(ctx context.Context) (int64, error) {
	now := ms(s.now())
	var n int64
	const why = "deadline passed before it could be sent"
	err := s.Write(ctx, func(t *Tx) error {
		n = 0
		rows, err := t.query(`UPDATE deliveries SET status='expired', reason='deadline', detail=?, updated_at=?
			WHERE status='queued' AND lease_until=0 AND deadline>0 AND deadline<? RETURNING id`, why, now, now)
		if err != nil {
			return err
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return err
		}
		ev := eventWriter{t: t}
		for _, id := range ids {
			if err := ev.add(id, now, StatusExpired, "deadline", why); err != nil {
				return err
			}
		}
		n = int64(len(ids))
		return ev.flush()
	})
	return n, err
}

// Requeue puts unknown or failed deliveries back in the queue (an
// operator's decision after checking the provider), resetting attempts.
func (s *Store) Requeue(ctx context.Context, ids []int64, deadline time.Time) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	now := ms(s.now())
	var n int64
	err := s.Write(ctx, func(t *Tx) error {
		for _, id := range ids {
			// The event keeps what the provider said of the first send;
			// the row starts afresh so receipts for the resend count.
			res, err := t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail)
				SELECT id, ?, 'queued', 'requeued', 'requeued by an operator; was ' || status || ' (' || reason || ')' ||
					CASE WHEN provider_id != '' THEN ', provider id ' || provider_id ELSE '' END ||
					CASE WHEN provider_status != '' THEN ', provider status ' || provider_status ELSE '' END ||
					CASE WHEN error_code != '' THEN ', error ' || error_code ELSE '' END
				FROM deliveries WHERE id=? AND status IN ('unknown','failed','expired')`, now, id)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				continue
			}
			if _, err := t.exec(`UPDATE deliveries SET status='queued', reason='requeued', detail='requeued by an operator', attempts=0, next_at=?, deadline=?, updated_at=?,
				provider_id='', provider_status='', error_code='', delivered_at=0, sent_at=0
				WHERE id=?`, now, ms(deadline), now, id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Pending counts deliveries still queued or sending, optionally only those
// of the given triggers, and reports the earliest next attempt among the
// queued ones.
func (s *Store) Pending(ctx context.Context, triggerIDs []int64) (n int, next time.Time, err error) {
	by, err := s.PendingByChannel(ctx, triggerIDs)
	if err != nil {
		return 0, time.Time{}, err
	}
	for _, p := range by {
		n += p.N
		if !p.Next.IsZero() && (next.IsZero() || p.Next.Before(next)) {
			next = p.Next
		}
	}
	return n, next, nil
}

// PendingCount is a channel's deliveries still queued or sending, and the
// earliest next attempt among the queued ones.
type PendingCount struct {
	N    int
	Next time.Time
}

// PendingByChannel is Pending for each channel that has any.
func (s *Store) PendingByChannel(ctx context.Context, triggerIDs []int64) (map[string]PendingCount, error) {
	cond, args := inTriggers("status IN ('queued','sending')", nil, "trigger_id", triggerIDs)
	rows, err := s.r.QueryContext(ctx, `SELECT channel, COUNT(*), COALESCE(MIN(CASE WHEN status='queued' THEN next_at END),0) FROM deliveries WHERE `+cond+
		` GROUP BY channel`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]PendingCount{}
	for rows.Next() {
		var ch string
		var p PendingCount
		var next int64
		if err := rows.Scan(&ch, &p.N, &next); err != nil {
			return nil, err
		}
		p.Next = fromMS(next)
		out[ch] = p
	}
	return out, rows.Err()
}

// scanIDs reads a column of ids and closes rows.
func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// inTriggers narrows cond (with its args) to the given triggers, if any.
func inTriggers(cond string, args []any, col string, ids []int64) (string, []any) {
	if len(ids) == 0 {
		return cond, args
	}
	cond += " AND " + col + " IN (" + placeholders(len(ids)) + ")"
	for _, id := range ids {
		args = append(args, id)
	}
	return cond, args
}
