package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AckLinkTarget is what an acknowledgement link or button points at: the
// delivery to record the acknowledgement against and what the person is
// asked to acknowledge.
type AckLinkTarget struct {
	DeliveryID    int64
	TriggerID     int64
	TriggerKey    string
	SubscriberID  string
	Name          string // the subscriber's display name
	Locale        string
	TimeZone      string
	Kind          string
	IncidentID    string
	IncidentTitle string
	// Subject is the message's subject, or the first line of its text.
	Subject string
	SentAt  time.Time
	DueAt   time.Time
	// AckedAt and AckVia describe the standing acknowledgement, if any.
	AckedAt time.Time
	AckVia  string
}

// AckLinkTarget finds the delivery an acknowledgement refers to: deliveryID
// itself when it is set, otherwise the subscriber's delivery of the
// trigger (their email one first, since links are sent by email, then
// their latest). Only deliveries that ask for acknowledgement count;
// ErrNotFound otherwise.
func (s *Store) AckLinkTarget(ctx context.Context, triggerID int64, subscriberID string, deliveryID int64) (AckLinkTarget, error) {
	cond, args := `d.trigger_id=? AND d.subscriber_id=?`, []any{triggerID, subscriberID}
	if deliveryID != 0 {
		cond, args = `d.id=?`, []any{deliveryID}
	}
	var a AckLinkTarget
	var text string
	var sent, due, acked int64
	err := s.r.QueryRowContext(ctx, `SELECT d.id, d.trigger_id, t.key, d.subscriber_id, COALESCE(sb.name,''), COALESCE(sb.locale,'en'), COALESCE(sb.timezone,''), d.kind,
		d.incident_id, COALESCE(i.title,''), COALESCE(m.subject,''), COALESCE(m.text,''), d.sent_at, COALESCE(p.due_at,0),
		COALESCE(a.at,0), COALESCE(a.via,'')
		FROM deliveries d JOIN triggers t ON t.id=d.trigger_id
		LEFT JOIN subscribers sb ON sb.id=d.subscriber_id
		LEFT JOIN incidents i ON i.id=d.incident_id AND d.incident_id!=''
		LEFT JOIN messages m ON m.id=d.message_id
		LEFT JOIN ack_policies p ON p.trigger_id=d.trigger_id
		LEFT JOIN acks a ON a.trigger_id=d.trigger_id AND a.subscriber_id=d.subscriber_id
		WHERE `+cond+` AND d.ack=1 ORDER BY d.kind='email' DESC, d.id DESC LIMIT 1`, args...).
		Scan(&a.DeliveryID, &a.TriggerID, &a.TriggerKey, &a.SubscriberID, &a.Name, &a.Locale, &a.TimeZone, &a.Kind, &a.IncidentID, &a.IncidentTitle,
			&a.Subject, &text, &sent, &due, &acked, &a.AckVia)
	if errNoRows(err) {
		return a, fmt.Errorf("store: nothing to acknowledge for that link: %w", ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: read acknowledgement target: %w", err)
	}
	if a.Subject == "" {
		a.Subject, _, _ = strings.Cut(text, "\n")
	}
	a.SentAt, a.DueAt, a.AckedAt = fromMS(sent), fromMS(due), fromMS(acked)
	return a, nil
}

// DeliveryAsksAck reports whether a delivery asks for acknowledgement,
// and when it was planned (acknowledgement tokens expire from then).
func (s *Store) DeliveryAsksAck(ctx context.Context, id int64) (asks bool, planned time.Time, err error) {
	var created int64
	err = s.r.QueryRowContext(ctx, `SELECT ack, created_at FROM deliveries WHERE id=?`, id).Scan(&asks, &created)
	if errNoRows(err) {
		return false, time.Time{}, fmt.Errorf("store: delivery %d: %w", id, ErrNotFound)
	}
	return asks, fromMS(created), err
}
