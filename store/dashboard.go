package store

import (
	"context"
	"fmt"
	"time"
)

// Read-only summaries for the web dashboard. Each is one GROUP BY on the
// read pool, so a page about a 100,000-message broadcast never carries the
// rows themselves and never waits for the writer.

// TallyFilter selects the deliveries a Tally counts; zero fields select
// everything.
type TallyFilter struct {
	IncidentID string
	TriggerID  int64
}

// TallyRow is how many deliveries of one channel are in one status, and
// how many of those were acknowledged.
type TallyRow struct {
	Channel string
	Kind    string
	Status  string
	N       int
	Acked   int
}

// Tally counts deliveries per channel and status.
func (s *Store) Tally(ctx context.Context, f TallyFilter) ([]TallyRow, error) {
	cond, args := "1=1", []any{}
	if f.IncidentID != "" {
		cond += " AND incident_id=?"
		args = append(args, f.IncidentID)
	}
	if f.TriggerID != 0 {
		cond += " AND trigger_id=?"
		args = append(args, f.TriggerID)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT channel, kind, status, COUNT(*), SUM(CASE WHEN acked_at > 0 THEN 1 ELSE 0 END) FROM deliveries WHERE `+cond+`
		GROUP BY channel, kind, status ORDER BY channel, status`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: tally deliveries: %w", err)
	}
	defer rows.Close()
	var out []TallyRow
	for rows.Next() {
		var r TallyRow
		if err := rows.Scan(&r.Channel, &r.Kind, &r.Status, &r.N, &r.Acked); err != nil {
			return nil, fmt.Errorf("store: scan tally: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Trigger reads one trigger by id.
func (s *Store) Trigger(ctx context.Context, id int64) (Trigger, error) {
	list, err := s.triggers(ctx, `WHERE id=?`, id)
	if err != nil {
		return Trigger{}, err
	}
	if len(list) == 0 {
		return Trigger{}, fmt.Errorf("store: trigger %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// RecentTriggers lists the latest triggers that planned at least one
// delivery, or are being planned a chunk at a time, newest first: the
// broadcasts, briefings and incident alerts an operator may want to follow.
func (s *Store) RecentTriggers(ctx context.Context, limit int) ([]Trigger, error) {
	return s.triggers(ctx, `WHERE planned > 0 OR plan_until != 0 ORDER BY id DESC LIMIT ?`, limit)
}

func (s *Store) triggers(ctx context.Context, tail string, args ...any) ([]Trigger, error) {
	return readTriggers(ctx, s.r, tail, args...)
}

// readTriggers lists the triggers a query tail (WHERE, ORDER BY…) selects.
func readTriggers(ctx context.Context, q querier, tail string, args ...any) ([]Trigger, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+triggerCols+` FROM triggers `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read triggers: %w", err)
	}
	defer rows.Close()
	var out []Trigger
	for rows.Next() {
		t, err := scanTrigger(rows)
		if err != nil {
			return nil, fmt.Errorf("store: scan trigger: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// OutcomeBucket is how many deliveries planned on one channel within one
// time bucket are in one status.
type OutcomeBucket struct {
	Start   time.Time
	Channel string
	Status  string
	N       int
}

// Outcomes counts deliveries planned at or after since by channel, status
// and bucket of width step (by planning time, so a bucket's bar only ever
// changes colour as its deliveries progress, never moves).
func (s *Store) Outcomes(ctx context.Context, since time.Time, step time.Duration) ([]OutcomeBucket, error) {
	w := step.Milliseconds()
	if w <= 0 {
		return nil, fmt.Errorf("store: outcome buckets need a positive width, not %s", step)
	}
	from := ms(since)
	rows, err := s.r.QueryContext(ctx, `SELECT (created_at - ?) / ?, channel, status, COUNT(*) FROM deliveries WHERE created_at >= ?
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, from, w, from)
	if err != nil {
		return nil, fmt.Errorf("store: count outcomes: %w", err)
	}
	defer rows.Close()
	var out []OutcomeBucket
	for rows.Next() {
		var b OutcomeBucket
		var i int64
		if err := rows.Scan(&i, &b.Channel, &b.Status, &b.N); err != nil {
			return nil, fmt.Errorf("store: scan outcomes: %w", err)
		}
		b.Start = fromMS(from + i*w)
		out = append(out, b)
	}
	return out, rows.Err()
}
