package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RetryStatuses are the statuses an operator may queue again (Requeue):
// a send in doubt, a permanent failure, attempts or deadline exhausted.
var RetryStatuses = []string{StatusUnknown, StatusFailed, StatusExpired}

// Retryable reports whether a delivery in this status may be queued again.
func Retryable(status string) bool { return slices.Contains(RetryStatuses, status) }

// RetryFilter selects deliveries to queue again; zero fields select
// everything but Statuses, which must name retryable statuses.
type RetryFilter struct {
	Statuses []string  // some of RetryStatuses
	Trigger  string    // trigger key
	Channel  string    // channel instance
	Since    time.Time // planned at or after
}

// RetryRow is a delivery a RetryFilter selected.
type RetryRow struct {
	ID      int64
	Channel string
	Status  string
	Trigger string
}

// RetryCandidates lists, in id order, the deliveries f selects.
func (s *Store) RetryCandidates(ctx context.Context, f RetryFilter) ([]RetryRow, error) {
	if len(f.Statuses) == 0 {
		return nil, fmt.Errorf("store: retry candidates: no status given")
	}
	for _, st := range f.Statuses {
		if !Retryable(st) {
			return nil, fmt.Errorf("store: retry candidates: %q is not a status that can be retried (%s)", st, strings.Join(RetryStatuses, ", "))
		}
	}
	cond := "d.status IN (" + placeholders(len(f.Statuses)) + ")"
	var args []any
	for _, st := range f.Statuses {
		args = append(args, st)
	}
	if f.Trigger != "" {
		// The trigger's id first: the deliveries' (trigger_id, …) index
		// then serves the rest.
		cond += " AND d.trigger_id = (SELECT id FROM triggers WHERE key = ?)"
		args = append(args, f.Trigger)
	}
	if f.Channel != "" {
		cond += " AND d.channel = ?"
		args = append(args, f.Channel)
	}
	if !f.Since.IsZero() {
		cond += " AND d.created_at >= ?"
		args = append(args, ms(f.Since))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT d.id, d.channel, d.status, t.key FROM deliveries d JOIN triggers t ON t.id = d.trigger_id
		WHERE `+cond+` ORDER BY d.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: retry candidates: %w", err)
	}
	defer rows.Close()
	var out []RetryRow
	for rows.Next() {
		var r RetryRow
		if err := rows.Scan(&r.ID, &r.Channel, &r.Status, &r.Trigger); err != nil {
			return nil, fmt.Errorf("store: retry candidates: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeliveryStatuses reports the status of each of ids that exists.
func (s *Store) DeliveryStatuses(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT id, status FROM deliveries WHERE id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: delivery statuses: %w", err)
		}
		for rows.Next() {
			var id int64
			var st string
			if err := rows.Scan(&id, &st); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: delivery statuses: %w", err)
			}
			out[id] = st
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: delivery statuses: %w", err)
		}
	}
	return out, nil
}
