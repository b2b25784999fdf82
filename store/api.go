package store

import (
	"context"
	"fmt"
	"time"
)

// APIResponse is a stored answer to an API request with an Idempotency-Key.
// Status 0 means the request is still being acted on.
type APIResponse struct {
	Route    string
	BodyHash string
	Status   int
	Body     []byte
}

// InProgress reports whether the request holding the key has not answered yet.
func (r APIResponse) InProgress() bool { return r.Status == 0 }

// APIRequest returns the stored answer for key, if any.
func (s *Store) APIRequest(ctx context.Context, key string) (APIResponse, bool, error) {
	var r APIResponse
	err := s.w.QueryRowContext(ctx, `SELECT route, body_hash, status, response FROM api_requests WHERE key=?`, key).Scan(&r.Route, &r.BodyHash, &r.Status, &r.Body)
	if errNoRows(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("store: read idempotency key: %w", err)
	}
	return r, true, nil
}

// ClaimAPIRequest claims key for a request to route whose body hashes to
// hash, before the request is acted on, so that two requests with the same
// key cannot both act. It returns claimed true when this request holds the
// key (it must then FinishAPIRequest or ReleaseAPIRequest), else the row
// already there: in progress (Status 0) or finished. An unfinished claim
// for the same route and body older than stale (its process died
// mid-request) is taken over.
func (s *Store) ClaimAPIRequest(ctx context.Context, key, route, hash string, stale time.Duration) (prev APIResponse, claimed bool, err error) {
	err = s.Write(ctx, func(t *Tx) error {
		now := s.now()
		res, err := t.exec(`INSERT INTO api_requests(key,route,body_hash,status,response,created_at) VALUES(?,?,?,0,X'',?)
			ON CONFLICT(key) DO UPDATE SET created_at=excluded.created_at
			WHERE api_requests.status=0 AND api_requests.created_at<? AND api_requests.route=excluded.route AND api_requests.body_hash=excluded.body_hash`,
			key, route, hash, ms(now), ms(now.Add(-stale)))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claimed = true
			return nil
		}
		return t.queryRow(`SELECT route, body_hash, status, response FROM api_requests WHERE key=?`, key).
			Scan(&prev.Route, &prev.BodyHash, &prev.Status, &prev.Body)
	})
	if err != nil {
		return APIResponse{}, false, fmt.Errorf("store: claim idempotency key: %w", err)
	}
	return prev, claimed, nil
}

// FinishAPIRequest stores the answer to the request that claimed key.
func (s *Store) FinishAPIRequest(ctx context.Context, key string, status int, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	return s.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`UPDATE api_requests SET status=?, response=? WHERE key=? AND status=0`, status, body, key); err != nil {
			return fmt.Errorf("store: finish idempotency key: %w", err)
		}
		return nil
	})
}

// ReleaseAPIRequest drops an unfinished claim on key (the request failed
// without acting), so that a retry with the same key can act.
func (s *Store) ReleaseAPIRequest(ctx context.Context, key string) error {
	return s.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM api_requests WHERE key=? AND status=0`, key); err != nil {
			return fmt.Errorf("store: release idempotency key: %w", err)
		}
		return nil
	})
}
