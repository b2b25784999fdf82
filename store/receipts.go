package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Provider receipts (Twilio status callbacks) tell crier what became of a
// message after the provider accepted it. They arrive late, duplicated and
// out of order, so applying one is idempotent and monotonic: a receipt
// only ever moves a delivery forward.

// receiptRank orders Twilio's message statuses. A receipt whose rank is
// not above the stored one changes nothing: a late "sent" never
// overwrites "delivered", a duplicate is a no-op, and the first final
// status wins ("undelivered" after "delivered" is ignored).
var receiptRank = map[string]int{
	"queued": 0, "accepted": 0, "scheduled": 0,
	"sending":   1,
	"sent":      2,
	"delivered": 3, "undelivered": 3, "failed": 3, "read": 3, "canceled": 3,
}

// KnownReceiptStatus reports whether status is a Twilio message status
// that ApplyReceipt understands.
func KnownReceiptStatus(status string) bool {
	_, ok := receiptRank[status]
	return ok
}

// rowRank orders delivery statuses for receipts. Queued (a retry after an
// ambiguous failure), sending, unknown (the process died mid-send) and
// expired rows rank lowest: a receipt proves the provider has the message,
// so it moves them on, and no duplicate is sent. Failed and suppressed
// rows that no receipt made are never moved (the provider refused or was
// never asked).
func rowRank(status, providerStatus string) (rank int, movable bool) {
	switch status {
	case StatusQueued, StatusSending, StatusUnknown, StatusExpired:
		return 0, true
	case StatusSent:
		return 2, true
	case StatusDelivered:
		return 3, true
	case StatusFailed:
		return 3, providerStatus != ""
	}
	return 0, false
}

// ReceiptReason classifies a Twilio error code from an undelivered or
// failed receipt into the log's reason words.
func ReceiptReason(code string) string {
	switch code {
	case "30003", "30005", "30006", "21211", "21614":
		return "bad_address"
	case "21610":
		return "opted_out"
	case "30001", "30008":
		return "server"
	}
	return "rejected" // 30004, 30007 and anything unrecognised: do not blindly resend
}

// receiptCodeText names the asynchronous error codes an operator meets most.
var receiptCodeText = map[string]string{
	"30001": "queue overflow at Twilio",
	"30002": "account suspended",
	"30003": "unreachable destination handset",
	"30004": "message blocked by the recipient or carrier",
	"30005": "unknown destination handset",
	"30006": "landline or unreachable carrier",
	"30007": "carrier filtering (message marked as spam)",
	"30008": "unknown error from the carrier",
	"21211": "invalid To number",
	"21610": "the recipient replied STOP to this sender",
	"21614": "the To number cannot receive SMS",
}

// receiptDetail is the detail a receipt leaves in the log.
func receiptDetail(status, code string) string {
	d := "Twilio status " + status
	if code != "" {
		d += ", error " + code
		if t := receiptCodeText[code]; t != "" {
			d += " (" + t + ")"
		}
	}
	return d
}

// ApplyReceipt applies a provider status receipt for sid to deliveryID.
// It reports whether anything changed; a duplicate, a stale or an
// out-of-order receipt changes nothing and is not an error.
//
// The provider status is always kept (when it moves forward). The
// delivery's own status follows it: "sent" makes it sent; "delivered" (or
// "read") makes it delivered with delivered_at; "undelivered", "failed" or
// "canceled" make it failed with the error code and a reason from
// ReceiptReason, and 21610 also records an opt-out for the address. A
// receipt for a row still sending, queued for a retry, unknown or expired
// moves it too: the provider has the message, so resending it would be a
// duplicate (the dispatcher's own later result for a row it no longer
// holds is ignored). Every change writes a delivery_events row.
func (s *Store) ApplyReceipt(ctx context.Context, deliveryID int64, sid, status, errorCode string) (bool, error) {
	in, ok := receiptRank[status]
	if !ok {
		return false, fmt.Errorf("store: receipt for delivery %d: unknown provider status %q", deliveryID, status)
	}
	changed := false
	err := s.Write(ctx, func(t *Tx) error {
		var cur, prov, providerID, kind, addr, channel string
		var sentAt int64
		err := t.queryRow(`SELECT status, provider_status, provider_id, kind, address, channel, sent_at FROM deliveries WHERE id=?`, deliveryID).
			Scan(&cur, &prov, &providerID, &kind, &addr, &channel, &sentAt)
		if errNoRows(err) {
			return fmt.Errorf("store: receipt for delivery %d: %w", deliveryID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: receipt for delivery %d: %w", deliveryID, err)
		}
		stored, known := receiptRank[prov]
		if !known {
			stored = -1
		}
		if in <= stored {
			return nil // duplicate, stale or a second final status
		}
		changed = true
		now := ms(s.now())
		var target, reason string
		switch status {
		case "sent":
			target, reason = StatusSent, "receipt"
		case "delivered", "read":
			target, reason = StatusDelivered, "receipt"
		case "undelivered", "failed", "canceled":
			target, reason = StatusFailed, ReceiptReason(errorCode)
		}
		next := cur
		if have, movable := rowRank(cur, prov); target != "" && movable && statusRank(target) > have {
			next = target
		}
		detail := receiptDetail(status, errorCode)
		set := `provider_status=?, updated_at=?`
		args := []any{status, now}
		if errorCode != "" {
			set += `, error_code=?`
			args = append(args, errorCode)
		}
		if providerID == "" && sid != "" {
			set += `, provider_id=?`
			args = append(args, sid)
		}
		if next != cur {
			set += `, status=?, reason=?, detail=?, lease_until=0, claimed_by=''`
			args = append(args, next, reason, detail)
			if sentAt == 0 {
				set += `, sent_at=?`
				args = append(args, now)
			}
			if next == StatusDelivered {
				set += `, delivered_at=?`
				args = append(args, now)
			}
		}
		args = append(args, deliveryID)
		if _, err := t.exec(`UPDATE deliveries SET `+set+` WHERE id=?`, args...); err != nil {
			return fmt.Errorf("store: apply receipt to delivery %d: %w", deliveryID, err)
		}
		evStatus, evReason := next, reason
		if next == cur {
			// The provider's status moved, the delivery's did not.
			evStatus, evReason = "receipt", status
		}
		if _, err := t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail) VALUES(?,?,?,?,?)`,
			deliveryID, now, evStatus, evReason, detail); err != nil {
			return fmt.Errorf("store: record receipt event: %w", err)
		}
		if errorCode == "21610" && next == StatusFailed && addr != "" {
			if err := t.OptOut(kind, addr, channel, "receipt"); err != nil {
				return fmt.Errorf("store: record opt-out from receipt: %w", err)
			}
		}
		return nil
	})
	return changed, err
}

// statusRank orders the delivery statuses a receipt can set.
func statusRank(status string) int {
	switch status {
	case StatusSent:
		return 2
	case StatusDelivered, StatusFailed:
		return 3
	}
	return 0
}

// ReceiptDelivery finds the delivery a receipt is about. d is the
// delivery id from the callback URL's query; it is trusted only when the
// row's provider id is still empty or equals sid. Otherwise (or without
// d) the delivery is looked up by its provider id. ErrNotFound when
// neither finds it.
func (s *Store) ReceiptDelivery(ctx context.Context, d, sid string) (int64, error) {
	if id, err := strconv.ParseInt(d, 10, 64); err == nil && id > 0 {
		var providerID string
		err := s.r.QueryRowContext(ctx, `SELECT provider_id FROM deliveries WHERE id=?`, id).Scan(&providerID)
		if err != nil && !errNoRows(err) {
			return 0, fmt.Errorf("store: find delivery %d: %w", id, err)
		}
		if err == nil && (providerID == "" || providerID == sid) {
			return id, nil
		}
	}
	if sid == "" {
		return 0, fmt.Errorf("store: no delivery for this receipt: %w", ErrNotFound)
	}
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE provider_id=? AND provider_id != '' AND kind='sms' ORDER BY id LIMIT 1`, sid).Scan(&id)
	if errNoRows(err) {
		return 0, fmt.Errorf("store: no delivery with provider id %s: %w", sid, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("store: find delivery by provider id: %w", err)
	}
	return id, nil
}

// ReceiptState is what receipts have recorded on a delivery.
type ReceiptState struct {
	Status         string
	Reason         string
	Detail         string
	ProviderID     string
	ProviderStatus string
	ErrorCode      string
	SentAt         time.Time // zero if never sent
	DeliveredAt    time.Time // zero without a delivery receipt
}

// Receipt reads the receipt-related columns of a delivery (the delivery
// log does not show them all).
func (s *Store) Receipt(ctx context.Context, deliveryID int64) (ReceiptState, error) {
	var r ReceiptState
	var sent, delivered int64
	err := s.r.QueryRowContext(ctx, `SELECT status, reason, detail, provider_id, provider_status, error_code, sent_at, delivered_at FROM deliveries WHERE id=?`, deliveryID).
		Scan(&r.Status, &r.Reason, &r.Detail, &r.ProviderID, &r.ProviderStatus, &r.ErrorCode, &sent, &delivered)
	if errNoRows(err) {
		return r, fmt.Errorf("store: delivery %d: %w", deliveryID, ErrNotFound)
	}
	r.SentAt, r.DeliveredAt = fromMS(sent), fromMS(delivered)
	return r, err
}
