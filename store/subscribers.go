package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/crier-dev/crier/subscribers"
)

func joinList(v []string) string { return strings.Join(v, ";") }

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ";")
}

// UpsertSubscribers inserts or replaces subscribers (already normalised),
// recording where they came from (config, import, api).
func (t *Tx) UpsertSubscribers(list []subscribers.Subscriber, source string) error {
	st, err := t.tx.PrepareContext(t.ctx, `INSERT INTO subscribers(id,name,roles,nations,tags,locale,locale_recorded,locale_source,timezone,phone,email,slack,quiet_start,quiet_end,opted_out,source,created_at,updated_at)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET name=excluded.name, roles=excluded.roles, nations=excluded.nations, tags=excluded.tags,
		locale=excluded.locale, locale_recorded=excluded.locale_recorded, locale_source=excluded.locale_source, timezone=excluded.timezone, phone=excluded.phone, email=excluded.email, slack=excluded.slack,
		quiet_start=excluded.quiet_start, quiet_end=excluded.quiet_end, opted_out=excluded.opted_out, source=excluded.source,
		updated_at=excluded.updated_at
		WHERE (subscribers.name, subscribers.roles, subscribers.nations, subscribers.tags, subscribers.locale, subscribers.locale_recorded,
		       subscribers.locale_source, subscribers.timezone, subscribers.phone, subscribers.email, subscribers.slack, subscribers.quiet_start,
		       subscribers.quiet_end, subscribers.opted_out, subscribers.source) IS DISTINCT FROM
		      (excluded.name, excluded.roles, excluded.nations, excluded.tags, excluded.locale, excluded.locale_recorded, excluded.locale_source,
		       excluded.timezone, excluded.phone, excluded.email, excluded.slack, excluded.quiet_start, excluded.quiet_end, excluded.opted_out, excluded.source)`)
	if err != nil {
		return fmt.Errorf("store: prepare subscriber upsert: %w", err)
	}
	defer st.Close()
	now := ms(t.s.now())
	for i := range list {
		s := &list[i]
		var qs, qe string
		if s.QuietHours != nil {
			qs, qe = s.QuietHours.Start, s.QuietHours.End
		}
		if _, err := st.ExecContext(t.ctx, s.ID, s.Name, joinList(s.Roles), joinList(s.Nations), joinList(s.Tags), s.Locale, s.LocaleRecorded, s.LocaleSource, s.TimeZone,
			s.Phone, s.Email, s.Slack, qs, qe, joinList(s.OptedOut), source, now, now); err != nil {
			return fmt.Errorf("store: save subscriber %s: %w", s.ID, err)
		}
	}
	return nil
}

// RemoveSubscribersNotIn deletes subscribers from source whose id is not
// in keep (a subscriber removed from the config file stops receiving).
func (t *Tx) RemoveSubscribersNotIn(source string, keep []string) (int64, error) {
	set := make(map[string]bool, len(keep))
	for _, k := range keep {
		set[k] = true
	}
	rows, err := t.query(`SELECT id FROM subscribers WHERE source=?`, source)
	if err != nil {
		return 0, err
	}
	var drop []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		if !set[id] {
			drop = append(drop, id)
		}
	}
	rows.Close()
	for _, id := range drop {
		if _, err := t.exec(`DELETE FROM subscribers WHERE id=?`, id); err != nil {
			return 0, err
		}
	}
	return int64(len(drop)), nil
}

// EachSubscriber calls fn for every subscriber inside the transaction, in
// id order, without holding them all in memory.
func (t *Tx) EachSubscriber(fn func(*subscribers.Subscriber) error) error {
	return eachSubscriber(t.ctx, t.tx, "", fn)
}

// EachSubscriberCommitted calls fn for every subscriber as last committed,
// read on a separate read connection: a planning transaction that does not
// change subscribers reads them in parallel with its own inserts instead of
// taking turns with them on the one writer connection.
func (t *Tx) EachSubscriberCommitted(fn func(*subscribers.Subscriber) error) error {
	return eachSubscriber(t.ctx, t.s.r, "", fn)
}

// EachSubscriberAfter is EachSubscriberCommitted for the subscribers
// whose id sorts after the given one (planning resumed after a crash).
func (t *Tx) EachSubscriberAfter(after string, fn func(*subscribers.Subscriber) error) error {
	return eachSubscriber(t.ctx, t.s.r, after, fn)
}

// Subscribers lists every subscriber in id order.
func (s *Store) Subscribers(ctx context.Context) ([]subscribers.Subscriber, error) {
	var out []subscribers.Subscriber
	err := eachSubscriber(ctx, s.r, "", func(sub *subscribers.Subscriber) error {
		out = append(out, *sub)
		return nil
	})
	return out, err
}

// EachSubscriberWithLocale calls fn for the committed subscribers who have
// locale, in id order.
func (t *Tx) EachSubscriberWithLocale(locale string, fn func(*subscribers.Subscriber) error) error {
	return scanSubscribers(t.ctx, t.s.r, `WHERE locale = ? ORDER BY locale, id`, []any{locale}, fn)
}

func eachSubscriber(ctx context.Context, q querier, after string, fn func(*subscribers.Subscriber) error) error {
	return scanSubscribers(ctx, q, `WHERE id > ? ORDER BY id`, []any{after}, fn)
}

func scanSubscribers(ctx context.Context, q querier, where string, args []any, fn func(*subscribers.Subscriber) error) error {
	rows, err := q.QueryContext(ctx, `SELECT id,name,roles,nations,tags,locale,locale_recorded,locale_source,timezone,phone,email,slack,quiet_start,quiet_end,opted_out FROM subscribers `+where, args...)
	if err != nil {
		return fmt.Errorf("store: list subscribers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s subscribers.Subscriber
		var roles, nations, tags, qs, qe, opted string
		if err := rows.Scan(&s.ID, &s.Name, &roles, &nations, &tags, &s.Locale, &s.LocaleRecorded, &s.LocaleSource, &s.TimeZone, &s.Phone, &s.Email, &s.Slack, &qs, &qe, &opted); err != nil {
			return fmt.Errorf("store: scan subscriber: %w", err)
		}
		s.Roles, s.Nations, s.Tags, s.OptedOut = splitList(roles), splitList(nations), splitList(tags), splitList(opted)
		if qs != "" {
			s.QuietHours = &subscribers.QuietHours{Start: qs, End: qe}
		}
		if err := fn(&s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// OptOut records that address (of kind) asked not to be contacted.
func (t *Tx) OptOut(kind, address, scope, source string) error {
	_, err := t.exec(`INSERT INTO opt_outs(kind,address,scope,source,created_at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING`,
		kind, address, scope, source, ms(t.s.now()))
	return err
}

// OptOut records an opt-out outside any other transaction.
func (s *Store) OptOut(ctx context.Context, kind, address, scope, source string) error {
	return s.Write(ctx, func(t *Tx) error { return t.OptOut(kind, address, scope, source) })
}

// OptOuts returns the opted-out addresses as a set keyed "kind:address".
func (t *Tx) OptOuts() (map[string]bool, error) {
	rows, err := t.query(`SELECT kind, address FROM opt_outs`)
	if err != nil {
		return nil, fmt.Errorf("store: list opt-outs: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k, a string
		if err := rows.Scan(&k, &a); err != nil {
			return nil, err
		}
		out[k+":"+a] = true
	}
	return out, rows.Err()
}
