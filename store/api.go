package store

import (
	"context"
	"fmt"
)

// APIResponse is a stored answer to an API request with an Idempotency-Key.
type APIResponse struct {
	Route    string
	BodyHash string
	Status   int
	Body     []byte
}

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

// SaveAPIRequest stores the answer given for key (first one wins).
func (s *Store) SaveAPIRequest(ctx context.Context, key string, r APIResponse) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO api_requests(key,route,body_hash,status,response,created_at) VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
			key, r.Route, r.BodyHash, r.Status, r.Body, ms(s.now()))
		return err
	})
}
