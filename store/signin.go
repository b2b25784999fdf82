package store

import (
	"context"
	"fmt"
	"time"
)

// Failed sign-ins, counted in the database so that a limit on guessing
// holds for every crier server on it: an attacker who spreads guesses
// over several servers behind a load balancer gets one allowance, not one
// per server. The store keeps the counts; what is counted (an address, a
// user name) and how many failures are allowed is the server's policy.

// SigninLimit is one count a sign-in attempt falls under: at most Max
// failures under Key in any window.
type SigninLimit struct {
	Key string
	Max int
}

// SigninAttempt is a sign-in attempt counted before its credentials are
// checked. Left alone it stays counted, as a failure; ForgetSignin takes
// it back when it succeeds or was no guess.
type SigninAttempt struct {
	ids []int64
}

// BeginSignin counts one attempt under each limit, unless one of them
// already has Max failures within window: then it counts nothing and
// returns how long until that limit has room again. Counting before the
// check, in one serialized transaction, means guesses sent in parallel,
// to one server or to several, cannot all be checked before the first
// failure is counted. An attempt a read already finds limited writes
// nothing, so a flood of refused sign-ins does not queue for the writer.
// Failures older than window are deleted on the way.
func (s *Store) BeginSignin(ctx context.Context, window time.Duration, limits ...SigninLimit) (SigninAttempt, time.Duration, error) {
	now := s.now()
	wait, err := signinWait(ctx, s.r, now, window, limits)
	if err != nil || wait > 0 {
		return SigninAttempt{}, wait, err
	}
	var a SigninAttempt
	err = s.Write(ctx, func(t *Tx) error {
		a = SigninAttempt{}
		now = s.now()
		if _, err := t.exec(`DELETE FROM signin_failures WHERE failed_at<=?`, ms(now.Add(-window))); err != nil {
			return err
		}
		var err error
		if wait, err = signinWait(t.ctx, t.tx, now, window, limits); err != nil || wait > 0 {
			return err
		}
		for _, l := range limits {
			var id int64
			if err := t.queryRow(`INSERT INTO signin_failures(key,failed_at) VALUES(?,?) RETURNING id`, l.Key, ms(now)).Scan(&id); err != nil {
				return err
			}
			a.ids = append(a.ids, id)
		}
		return nil
	})
	if err != nil {
		return SigninAttempt{}, 0, fmt.Errorf("store: count sign-in attempt: %w", err)
	}
	return a, wait, nil
}

// signinWait is how long until every limit has room for one more failure
// at now: 0 when they all have.
func signinWait(ctx context.Context, q querier, now time.Time, window time.Duration, limits []SigninLimit) (time.Duration, error) {
	since := ms(now.Add(-window))
	var wait time.Duration
	for _, l := range limits {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM signin_failures WHERE key=? AND failed_at>?`, l.Key, since).Scan(&n); err != nil {
			return 0, fmt.Errorf("store: count sign-in failures: %w", err)
		}
		if n < l.Max {
			continue
		}
		// The limit has room again when enough of its failures are older
		// than window that fewer than Max remain.
		var at int64
		if err := q.QueryRowContext(ctx, `SELECT failed_at FROM signin_failures WHERE key=? AND failed_at>? ORDER BY failed_at LIMIT 1 OFFSET ?`,
			l.Key, since, n-l.Max).Scan(&at); err != nil {
			return 0, fmt.Errorf("store: read sign-in failures: %w", err)
		}
		wait = max(wait, fromMS(at).Add(window).Sub(now))
	}
	return wait, nil
}

// ForgetSignin takes back an attempt BeginSignin counted: it succeeded,
// or it was no guess (a form that could not be read, a server error).
func (s *Store) ForgetSignin(ctx context.Context, a SigninAttempt) error {
	if len(a.ids) == 0 {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM signin_failures WHERE id IN (SELECT value FROM json_each(?))`, jsonIDs(a.ids)); err != nil {
		return fmt.Errorf("store: forget sign-in attempt: %w", err)
	}
	return nil
}
