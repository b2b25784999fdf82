package store

import (
	"context"
	"fmt"
	"time"
)

// A delivery goes through these steps in a dispatcher's hands:
//
//  1. A worker about to send claims exactly what it will send next (one
//     message, or one batch) with ClaimOptions.Send: in one statement
//     the rows become sending, leased to the process (claimed_by,
//     lease_until), with the attempt counted and its start recorded
//     (attempt_at). The commit is durable before the provider call, and
//     nothing is claimed ahead of it, so a crash leaves in doubt only the
//     requests really under way: at most one message or batch a worker.
//  2. Record writes the outcome and releases the row.
//
// A plain claim (without Send) only leases queued rows; they stay queued
// and are released as they were if their process dies (ReleaseOrphans).
// Round does a dispatcher's outcomes and claims in one transaction.

// DefaultHolder holds claims made without a holder (tests and tools that
// claim and record in one process).
const DefaultHolder = "local"

// Claimed is a delivery a dispatcher worker has leased and will send.
type Claimed struct {
	ID           int64
	Key          string // trigger key / subscriber / channel: stable across retries
	TriggerKey   string
	SubscriberID string
	Channel      string
	Kind         string
	Address      string
	IncidentID   string
	Attempts     int // including the one this claim leads to
	Deadline     time.Time
	CreatedAt    time.Time
	Subject      string
	Text         string
	HTML         string
	Segments     int
	Thread       string // the thread reference for IncidentID on this channel and address, if any
	// The incident's current state, for a parent message kept current.
	IncidentTitle, IncidentSeverity, IncidentStatus string
	// Holder is the process that holds the claim.
	Holder string
}

// DeliveryKey builds the idempotency key of a delivery.
func DeliveryKey(triggerKey, subscriberID, channel string) string {
	return triggerKey + "/" + subscriberID + "/" + channel
}

// ClaimOptions say which deliveries a dispatcher may claim.
type ClaimOptions struct {
	Channel string
	Limit   int
	Lease   time.Duration
	// Serial makes deliveries about the same incident to the same address
	// go one at a time, in order (Slack threads need the parent's ts
	// before the first reply).
	Serial bool
	// TriggerIDs, when set, limits claims to these triggers (the CLI
	// delivering what it just planned).
	TriggerIDs []int64
	// Holder names the claiming process (DefaultHolder if empty).
	Holder string
	// Send marks the claimed rows sending at once, counting the attempt
	// and recording its start: the caller sends them now.
	Send bool
}

func holderOr(h string) string {
	if h == "" {
		return DefaultHolder
	}
	return h
}

// Claim leases up to o.Limit due, unclaimed deliveries of one channel to
// o.Holder, most urgent first: marked sending if o.Send, else left queued
// (a lease only, given back as it was if the holder dies).
func (s *Store) Claim(ctx context.Context, o ClaimOptions) ([]Claimed, error) {
	var out []Claimed
	err := s.write(ctx, false, func(t *Tx) error {
		var err error
		out, err = t.claim(o)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Round writes a dispatcher's outcomes and then makes its claims, in one
// transaction: a worker about to send again has the outcome of its last
// send on record first. It returns each claim's deliveries in order.
func (s *Store) Round(ctx context.Context, results []Result, claims []ClaimOptions) ([][]Claimed, error) {
	out := make([][]Claimed, len(claims))
	// Beside other writers: every row it touches is one this process
	// holds, or one its claim locks (passing over rows another process
	// has locked).
	err := s.write(ctx, false, func(t *Tx) error {
		if err := t.record(results); err != nil {
			return err
		}
		for i, o := range claims {
			var err error
			if out[i], err = t.claim(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Due reports, from a read, whether any delivery of channel (of the given
// triggers, when set) is queued, unclaimed and due: an idle dispatcher
// looks before it claims, so it takes no write while there is nothing to do.
func (s *Store) Due(ctx context.Context, channel string, triggerIDs []int64) (bool, error) {
	cond, args := inTriggers(`status='queued' AND lease_until=0 AND channel=? AND next_at<=?`, []any{channel, ms(s.now())}, "trigger_id", triggerIDs)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE `+cond+` LIMIT 1) AS due`, args...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: look for due deliveries of %s: %w", channel, err)
	}
	return n > 0, nil
}

func (t *Tx) claim(o ClaimOptions) ([]Claimed, error) {
	now := t.s.now()
	holder := holderOr(o.Holder)
	// The partial index deliveries_claim holds exactly the unclaimed
	// queued rows (a claim's lease is set exactly while it is held): a
	// claim walks it in (priority, next_at, id) order and stops at its
	// limit.
	cond := `status='queued' AND lease_until=0 AND channel=? AND next_at<=?`
	args := []any{o.Channel, ms(now)}
	if o.Serial {
		cond += ` AND (incident_id='' OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.incident_id=d.incident_id AND e.channel=d.channel
			AND e.address=d.address AND e.id<d.id AND e.status IN ('queued','sending') AND e.incident_id != ''))`
	}
	cond, args = inTriggers(cond, args, "trigger_id", o.TriggerIDs)
	args = append(args, o.Limit)
	set := `claimed_by=?, lease_until=?, updated_at=?`
	setArgs := []any{holder, ms(now.Add(o.Lease)), ms(now)}
	ret := `attempts+1`
	if o.Send {
		set = `status='sending', attempts=attempts+1, attempt_at=?, ` + set
		setArgs = append([]any{ms(now)}, setArgs...)
		ret = `attempts` // SET is applied before RETURNING reads the row
	}
	// RETURNING carries the row itself: no second read of the claimed
	// rows. Only what other tables hold is looked up afterwards, and
	// only where a row needs it.
	rows, err := t.query(`UPDATE deliveries SET `+set+`
		WHERE id IN (SELECT id FROM deliveries d WHERE `+cond+` ORDER BY priority DESC, next_at, id LIMIT ? /*FOR UPDATE SKIP LOCKED*/)
		RETURNING id, trigger_id, subscriber_id, channel, kind, address, incident_id, `+ret+`, deadline, created_at, COALESCE(message_id,0), priority, next_at`,
		append(setArgs, args...)...)
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	defer rows.Close()
	var out []Claimed
	var order []claimOrder
	for rows.Next() {
		var c Claimed
		var trigger, deadline, created, msgID, next int64
		var prio int
		if err := rows.Scan(&c.ID, &trigger, &c.SubscriberID, &c.Channel, &c.Kind, &c.Address, &c.IncidentID, &c.Attempts, &deadline, &created,
			&msgID, &prio, &next); err != nil {
			return nil, err
		}
		c.Deadline, c.CreatedAt, c.Holder = fromMS(deadline), fromMS(created), holder
		if out == nil {
			out = make([]Claimed, 0, min(o.Limit, 1024))
			order = make([]claimOrder, 0, min(o.Limit, 1024))
		}
		out = append(out, c)
		order = append(order, claimOrder{trigger: trigger, msg: msgID, prio: prio, next: next})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) == 0 {
		return nil, nil
	}
	if err := t.s.completeClaimed(t, out, order); err != nil {
		return nil, err
	}
	return out, nil
}

// Orphans says whose claims ReleaseOrphans gives up.
type Orphans struct {
	// Channel limits the recovery to one channel instance.
	Channel string
	// Resend queues in-doubt deliveries again (at-least-once) instead of
	// holding them as unknown (at-most-once).
	Resend bool
	// Self is the recovering process: its own claims are left alone.
	Self string
	// Dead reports whether a holder is known to be dead even though its
	// heartbeat has not yet run out (a process on this host that no
	// longer exists). May be nil.
	Dead func(holder string) bool
	// Detail is added to the in-doubt explanation (for example that the
	// channel reconciles with its provider).
	Detail string
}

// Recovered counts what ReleaseOrphans did.
type Recovered struct {
	// Released claims were never attempted: queued again, no attempt spent.
	Released int64
	// InDoubt deliveries had a provider request started by a process that
	// is gone: held as unknown, or queued again under Resend.
	InDoubt int64
}

// ReleaseOrphans gives up the claims of processes that are gone (their
// heartbeat ran out, or o.Dead says so) and claims whose lease ran out.
// A claimed delivery that was never attempted goes back to the queue as
// it was; one whose provider request had started is in doubt and follows
// the channel's policy, with an event saying when the request started.
func (s *Store) ReleaseOrphans(ctx context.Context, o Orphans) (Recovered, error) {
	now := s.now()
	var rec Recovered
	err := s.Write(ctx, func(t *Tx) error {
		rec = Recovered{}
		gone, err := t.goneHolders(o, now)
		if err != nil {
			return err
		}
		// Whose rows: a gone holder's, or any whose lease has run out.
		who := `lease_until<?`
		args := []any{ms(now)}
		if len(gone) > 0 {
			who = `(lease_until<? OR claimed_by IN (` + placeholders(len(gone)) + `))`
			for _, g := range gone {
				args = append(args, g)
			}
		}
		chArgs := append([]any{o.Channel}, args...)
		res, err := t.exec(`UPDATE deliveries SET claimed_by='', lease_until=0, updated_at=?
			WHERE status='queued' AND lease_until != 0 AND channel=? AND `+who, append([]any{ms(now)}, chArgs...)...)
		if err != nil {
			return fmt.Errorf("store: release claims of %s: %w", o.Channel, err)
		}
		rec.Released, _ = res.RowsAffected()

		status, what := StatusUnknown, "not resent (channel policy in_doubt: hold); check the provider, then crier retry"
		if o.Resend {
			status, what = StatusQueued, "sent again (channel policy in_doubt: resend)"
		}
		if o.Detail != "" {
			what += "; " + o.Detail
		}
		rows, err := t.query(`SELECT id, attempt_at, claimed_by FROM deliveries WHERE status='sending' AND lease_until != 0 AND channel=? AND `+who, chArgs...)
		if err != nil {
			return fmt.Errorf("store: find in-doubt deliveries of %s: %w", o.Channel, err)
		}
		type doubt struct {
			id, at int64
			by     string
		}
		var ds []doubt
		for rows.Next() {
			var d doubt
			if err := rows.Scan(&d.id, &d.at, &d.by); err != nil {
				rows.Close()
				return err
			}
			ds = append(ds, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ev := eventWriter{t: t}
		for _, d := range ds {
			detail := fmt.Sprintf("in doubt: the request to the provider started at %s (by %s) and crier stopped before its answer; %s",
				fromMS(d.at).Format("2006-01-02 15:04:05.000 MST"), d.by, what)
			res, err := t.exec(`UPDATE deliveries SET status=?, reason='in_doubt', detail=?, next_at=?, lease_until=0, claimed_by='', updated_at=?
				WHERE id=? AND status='sending'`, status, detail, ms(now), ms(now), d.id)
			if err != nil {
				return fmt.Errorf("store: recover delivery %d: %w", d.id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			rec.InDoubt++
			if err := ev.add(d.id, ms(now), status, "in_doubt", detail); err != nil {
				return err
			}
		}
		return ev.flush()
	})
	if err != nil {
		return Recovered{}, err
	}
	return rec, nil
}

// goneHolders lists the holders of claims that are not o.Self and whose
// heartbeat has run out or who o.Dead says are dead.
func (t *Tx) goneHolders(o Orphans, now time.Time) ([]string, error) {
	rows, err := t.query(`SELECT DISTINCT d.claimed_by, COALESCE(l.expires_at, 0) FROM deliveries d
		LEFT JOIN leases l ON l.name = 'node:' || d.claimed_by
		WHERE d.lease_until != 0 AND d.claimed_by != '' AND d.channel=?`, o.Channel)
	if err != nil {
		return nil, fmt.Errorf("store: claim holders of %s: %w", o.Channel, err)
	}
	defer rows.Close()
	var gone []string
	for rows.Next() {
		var h string
		var exp int64
		if err := rows.Scan(&h, &exp); err != nil {
			return nil, err
		}
		if h == o.Self || h == "" {
			continue // "": a row sent before claims had holders; its lease decides
		}
		if exp <= ms(now) || (o.Dead != nil && o.Dead(h)) {
			gone = append(gone, h)
		}
	}
	return gone, rows.Err()
}

// NodeHeartbeat records that the claiming process holder is alive until
// ttl from now: its claims are its own while it lasts.
func (s *Store) NodeHeartbeat(ctx context.Context, holder string, ttl time.Duration) error {
	return s.Heartbeat(ctx, "node:"+holder, holder, ttl)
}

// NodeGone removes holder's heartbeat (a clean stop).
func (s *Store) NodeGone(ctx context.Context, holder string) error {
	return s.ReleaseHeartbeat(ctx, "node:"+holder, holder)
}

// InHand counts the deliveries of the given triggers (all, when none)
// that a process holds: claimed and not yet recorded.
func (s *Store) InHand(ctx context.Context, triggerIDs []int64) (int, error) {
	cond, args := inTriggers("claimed_by != ''", nil, "trigger_id", triggerIDs)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE `+cond, args...).Scan(&n)
	return n, err
}
