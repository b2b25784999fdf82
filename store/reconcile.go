package store

import (
	"context"
	"fmt"
	"time"
)

// Reconciliation settles deliveries in doubt (status unknown after a
// request whose answer never came) by asking the provider what it has. A
// delivery is waiting for reconciliation while it is unknown, its request
// start is known (attempt_at) and next_at says when to ask next; next_at 0
// means reconciliation is over and only an operator decides.

// Doubt is a delivery in doubt, as reconciliation needs it.
type Doubt struct {
	ID        int64
	Channel   string
	Address   string
	Text      string
	AttemptAt time.Time
}

// InDoubt lists up to limit deliveries of channel in doubt whose time to
// ask the provider again has come, oldest request first.
func (s *Store) InDoubt(ctx context.Context, channel string, limit int) ([]Doubt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.id, d.channel, d.address, d.attempt_at, COALESCE(m.text,'') FROM deliveries d
		LEFT JOIN messages m ON m.id=d.message_id
		WHERE d.status='unknown' AND d.channel=? AND d.next_at>0 AND d.next_at<=? AND d.attempt_at>0
		ORDER BY d.attempt_at, d.id LIMIT ?`, channel, ms(s.now()), limit)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries in doubt on %s: %w", channel, err)
	}
	defer rows.Close()
	var out []Doubt
	for rows.Next() {
		var d Doubt
		var at int64
		if err := rows.Scan(&d.ID, &d.Channel, &d.Address, &at, &d.Text); err != nil {
			return nil, err
		}
		d.AttemptAt = fromMS(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// ProviderIDTaken reports whether a delivery other than except already
// carries providerID.
func (s *Store) ProviderIDTaken(ctx context.Context, providerID string, except int64) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE provider_id=? AND kind='sms' AND id != ?`, providerID, except).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: look up provider id: %w", err)
	}
	return n > 0, nil
}

// Settlement is what reconciliation decided about a delivery in doubt.
type Settlement int

const (
	// SettledSent: the provider has the message (ProviderID).
	SettledSent Settlement = iota
	// SettledMissing: the provider does not have it, long enough after the
	// request to be sure: it is queued to be sent again.
	SettledMissing
	// SettledLater: ask again at Next.
	SettledLater
	// SettledUndecided: reconciliation cannot tell; it stays unknown for
	// an operator.
	SettledUndecided
)

// Reconciled records reconciliation's decision about delivery id, if it is
// still in doubt. It reports whether it changed the delivery.
func (s *Store) Reconciled(ctx context.Context, id int64, how Settlement, providerID string, segments int, next time.Time, detail string) (bool, error) {
	now := ms(s.now())
	var q string
	var args []any
	status := StatusUnknown
	switch how {
	case SettledSent:
		status = StatusSent
		// Never two deliveries for one provider message: two lookups at
		// once may both have found the same message for the same text.
		q = `UPDATE deliveries SET status='sent', reason='reconciled', detail=?, provider_id=?, provider_segments=?, sent_at=attempt_at, next_at=0, updated_at=?
			WHERE id=? AND status='unknown' AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.provider_id=? AND o.kind='sms' AND o.id != ?)`
		args = []any{detail, providerID, segments, now, id, providerID, id}
	case SettledMissing:
		status = StatusQueued
		q = `UPDATE deliveries SET status='queued', reason='reconciled', detail=?, next_at=?, lease_until=0, claimed_by='', updated_at=?
			WHERE id=? AND status='unknown'`
		args = []any{detail, now, now, id}
	case SettledLater:
		_, err := s.w.ExecContext(ctx, `UPDATE deliveries SET next_at=? WHERE id=? AND status='unknown'`, ms(next), id)
		return false, err
	case SettledUndecided:
		q = `UPDATE deliveries SET reason='in_doubt', detail=?, next_at=0, updated_at=? WHERE id=? AND status='unknown'`
		args = []any{detail, now, id}
	}
	changed := false
	err := s.Write(ctx, func(t *Tx) error {
		res, err := t.exec(q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			changed = false
			return nil
		}
		changed = true
		reason := "reconciled"
		if how == SettledUndecided {
			reason = "in_doubt"
		}
		ev := eventWriter{t: t}
		if err := ev.add(id, now, status, reason, detail); err != nil {
			return err
		}
		return ev.flush()
	})
	if err != nil {
		return false, fmt.Errorf("store: record reconciliation of delivery %d: %w", id, err)
	}
	return changed, nil
}
