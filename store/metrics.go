package store

import (
	"context"
	"fmt"
	"time"
)

// Queries the metrics collector runs at scrape time. They read through the
// read pool, so a scrape never waits for (or holds up) the writer.

// QueueStat is one channel's outbox at a moment.
type QueueStat struct {
	Channel string
	// Queued counts every queued delivery, due or not (a retry's backoff,
	// quiet hours and digest windows keep rows queued but not yet due).
	Queued int
	// Due counts the queued deliveries whose next_at has come.
	Due int
	// OldestDue is the earliest next_at among the due deliveries: the time
	// the longest-waiting one became sendable. Zero when none is due.
	OldestDue time.Time
}

// QueueStats returns one QueueStat per channel with queued deliveries,
// ordered by channel. A channel with an empty queue is absent.
func (s *Store) QueueStats(ctx context.Context) ([]QueueStat, error) {
	now := ms(s.now())
	rows, err := s.r.QueryContext(ctx, `SELECT channel, COUNT(*),
		COUNT(CASE WHEN next_at <= ? THEN 1 END),
		COALESCE(MIN(CASE WHEN next_at <= ? THEN next_at END), 0)
		FROM deliveries WHERE status = 'queued' GROUP BY channel ORDER BY channel`, now, now)
	if err != nil {
		return nil, fmt.Errorf("store: queue stats: %w", err)
	}
	defer rows.Close()
	var out []QueueStat
	for rows.Next() {
		var q QueueStat
		var oldest int64
		if err := rows.Scan(&q.Channel, &q.Queued, &q.Due, &oldest); err != nil {
			return nil, fmt.Errorf("store: queue stats: %w", err)
		}
		q.OldestDue = fromMS(oldest)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: queue stats: %w", err)
	}
	return out, nil
}

// ScheduleLag is the latest recorded occurrence of one briefing schedule.
type ScheduleLag struct {
	Schedule string
	DueAt    time.Time
	FiredAt  time.Time
}

// Lag is how late the occurrence fired (never negative).
func (l ScheduleLag) Lag() time.Duration { return max(0, l.FiredAt.Sub(l.DueAt)) }

// ScheduleLags returns the latest run of every schedule that has run,
// ordered by schedule.
func (s *Store) ScheduleLags(ctx context.Context) ([]ScheduleLag, error) {
	// The primary key (schedule, due_at) serves both the grouping and the
	// lookup of each schedule's latest row.
	rows, err := s.r.QueryContext(ctx, `SELECT r.schedule, r.due_at, r.fired_at FROM schedule_runs r
		JOIN (SELECT schedule, MAX(due_at) AS due_at FROM schedule_runs GROUP BY schedule) latest
		ON latest.schedule = r.schedule AND latest.due_at = r.due_at ORDER BY r.schedule`)
	if err != nil {
		return nil, fmt.Errorf("store: schedule lags: %w", err)
	}
	defer rows.Close()
	var out []ScheduleLag
	for rows.Next() {
		var l ScheduleLag
		var due, fired int64
		if err := rows.Scan(&l.Schedule, &due, &fired); err != nil {
			return nil, fmt.Errorf("store: schedule lags: %w", err)
		}
		l.DueAt, l.FiredAt = fromMS(due), fromMS(fired)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: schedule lags: %w", err)
	}
	return out, nil
}
