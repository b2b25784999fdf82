package store

import (
	"context"
	"fmt"
	"time"
)

// AckResult is what recording an acknowledgement did.
type AckResult struct {
	TriggerID    int64
	SubscriberID string
	DeliveryID   int64
	// Recorded is false when this person had already acknowledged this
	// trigger (the first acknowledgement stands).
	Recorded bool
	// At is when the standing acknowledgement was made.
	At time.Time
}

// RecordAck records that the recipient of deliveryID acknowledged its
// trigger, via sms, email, slack or api. It is idempotent: a second
// acknowledgement by the same person of the same trigger changes nothing.
// The delivery itself and every other delivery of the same trigger to the
// same person are marked acknowledged.
func (s *Store) RecordAck(ctx context.Context, deliveryID int64, via, detail string) (AckResult, error) {
	var r AckResult
	err := s.Write(ctx, func(t *Tx) error {
		now := s.now()
		if err := t.queryRow(`SELECT trigger_id, subscriber_id FROM deliveries WHERE id=?`, deliveryID).Scan(&r.TriggerID, &r.SubscriberID); err != nil {
			if errNoRows(err) {
				return fmt.Errorf("store: delivery %d: %w", deliveryID, ErrNotFound)
			}
			return err
		}
		r.DeliveryID = deliveryID
		res, err := t.exec(`INSERT INTO acks(trigger_id,subscriber_id,delivery_id,at,via,detail) VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
			r.TriggerID, r.SubscriberID, deliveryID, ms(now), via, detail)
		if err != nil {
			return fmt.Errorf("store: record acknowledgement: %w", err)
		}
		n, _ := res.RowsAffected()
		r.Recorded = n == 1
		var at int64
		if err := t.queryRow(`SELECT at FROM acks WHERE trigger_id=? AND subscriber_id=?`, r.TriggerID, r.SubscriberID).Scan(&at); err != nil {
			return err
		}
		r.At = fromMS(at)
		if !r.Recorded {
			return nil
		}
		if _, err := t.exec(`UPDATE deliveries SET acked_at=?, ack_via=?, updated_at=? WHERE trigger_id=? AND subscriber_id=? AND acked_at=0`,
			ms(now), via, ms(now), r.TriggerID, r.SubscriberID); err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail) VALUES(?,?,'acknowledged',?,?)`, deliveryID, ms(now), via, detail)
		return err
	})
	return r, err
}

// ackableSent limits a delivery lookup to what the recipient can have
// read: a delivery still queued (deferred by quiet hours, waiting for a
// retry) or being sent is not what a reply acknowledges.
const ackableSent = `ack=1 AND status IN ('sent','delivered')`

// LatestAckable returns the most recent delivery sent to address (of
// kind) whose trigger asks for acknowledgement, or ErrNotFound.
func (s *Store) LatestAckable(ctx context.Context, kind, address string) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE kind=? AND address=? AND `+ackableSent+` ORDER BY id DESC LIMIT 1`, kind, address).Scan(&id)
	if errNoRows(err) {
		return 0, fmt.Errorf("store: no delivery to acknowledge for that address: %w", ErrNotFound)
	}
	return id, err
}
