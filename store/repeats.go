package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A broadcast's fingerprint (triggers.fingerprint) is a hash of what makes
// two broadcasts the same message to the same people; the application
// computes it. A broadcast sent without a key of its own is planned under
// a key made of a prefix derived from its fingerprint and a number that
// counts the times that content was sent (prefix + "1", prefix + "2", …):
// two identical requests that read the store at the same moment choose the
// same key, and the trigger key's uniqueness lets only one of them plan.

// Repeats is what the store holds of earlier broadcasts of one content.
type Repeats struct {
	// Triggers are the triggers with the fingerprint, and those planned
	// under the content's own keys whose fingerprint is not written yet (a
	// plan still being written), oldest first.
	Triggers []Trigger
	// Next is the number of the content's next key: prefix + Next is not
	// a trigger key yet.
	Next int
}

// Latest is the most recent of the triggers created at or after since.
func (r Repeats) Latest(since time.Time) (Trigger, bool) {
	for i := len(r.Triggers) - 1; i >= 0; i-- {
		if tr := r.Triggers[i]; !tr.CreatedAt.Before(since) {
			return tr, true
		}
	}
	return Trigger{}, false
}

// Repeats reads the earlier broadcasts with this fingerprint, and the next
// free key of the form keyPrefix + n, in one read transaction.
func (s *Store) Repeats(ctx context.Context, fingerprint, keyPrefix string) (Repeats, error) {
	if fingerprint == "" || keyPrefix == "" {
		return Repeats{}, fmt.Errorf("store: repeats: a fingerprint and a key prefix are required")
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return Repeats{}, fmt.Errorf("store: repeats: %w", err)
	}
	defer tx.Rollback()
	// "fingerprint != ''" repeats the partial index's condition so that
	// the index serves the query.
	trs, err := readTriggers(ctx, tx, `WHERE fingerprint = ? AND fingerprint != '' ORDER BY created_at, id`, fingerprint)
	if err != nil {
		return Repeats{}, err
	}
	out := Repeats{Triggers: trs, Next: 1}
	for _, tr := range trs {
		if n, ok := keyNumber(tr.Key, keyPrefix); ok && n >= out.Next {
			out.Next = n + 1
		}
	}
	// Keys taken after the last one with a fingerprint: a plan that has
	// not finished (the fingerprint is written when planning returns), or
	// one whose process stopped before writing it. Each is a lookup by key.
	for {
		tr, ok, err := triggerWhere(ctx, tx, `key = ?`, keyPrefix+strconv.Itoa(out.Next))
		if err != nil {
			return Repeats{}, err
		}
		if !ok {
			break
		}
		out.Triggers = append(out.Triggers, tr)
		out.Next++
	}
	slices.SortStableFunc(out.Triggers, func(a, b Trigger) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// keyNumber parses key as prefix + a positive decimal number.
func keyNumber(key, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || rest == "" || strings.TrimLeft(rest, "0123456789") != "" || rest[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// SetFingerprint records a trigger's fingerprint unless it already has one.
func (s *Store) SetFingerprint(ctx context.Context, triggerID int64, fingerprint string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE triggers SET fingerprint = ? WHERE id = ? AND fingerprint = ''`, fingerprint, triggerID); err != nil {
		return fmt.Errorf("store: record the fingerprint of trigger %d: %w", triggerID, err)
	}
	return nil
}
