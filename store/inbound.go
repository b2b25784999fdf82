package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Inbound SMS: every message a recipient sends back is a row in inbound
// with what crier did about it, and STOP/START change crier's own opt-out
// list in the same transaction. Crier keeps that list itself because a
// provider's memory of STOPs is lost with its redaction features, and
// because a STOP must hold on every sender crier uses.

// The actions an inbound message can lead to.
const (
	InboundStop    = "stop"
	InboundStart   = "start"
	InboundHelp    = "help"
	InboundAck     = "ack"
	InboundUnknown = "unknown"
)

// Inbound is one received SMS and what crier did with it.
type Inbound struct {
	At   time.Time // zero: the store's clock
	From string
	To   string
	Body string
	// Action is stop, start, help, ack or unknown.
	Action string
	// Scope is the sender the STOP was sent to (a number or a Messaging
	// Service SID); kept with the opt-out, not in the inbound row.
	Scope string
	// DeliveryID is the delivery an ack acknowledged (0: none).
	DeliveryID int64
	// ProviderID is the provider's id of the inbound message (MessageSid).
	ProviderID string
}

// InboundResult is what recording an inbound message changed.
type InboundResult struct {
	ID int64
	// OptOuts is how many opt-out rows a stop added or a start removed.
	OptOuts int64
}

// RecordInbound stores in and, in the same transaction, applies its
// action to the opt-out list: a stop records an SMS opt-out for the
// sender's number (scope in.Scope, source "sms reply"), a start removes
// every SMS opt-out of that number whatever its scope or source. A
// message whose provider id was recorded before (a provider's retry) is
// not applied twice: the first row's result is returned.
func (s *Store) RecordInbound(ctx context.Context, in Inbound) (InboundResult, error) {
	var r InboundResult
	err := s.Write(ctx, func(t *Tx) error {
		if in.ProviderID != "" {
			err := t.queryRow(`SELECT id FROM inbound WHERE provider_id=? LIMIT 1`, in.ProviderID).Scan(&r.ID)
			if err == nil {
				return nil
			}
			if !errNoRows(err) {
				return fmt.Errorf("store: find inbound message: %w", err)
			}
		}
		at := in.At
		if at.IsZero() {
			at = s.now()
		}
		switch in.Action {
		case InboundStop:
			res, err := t.exec(`INSERT INTO opt_outs(kind,address,scope,source,created_at) VALUES('sms',?,?,'sms reply',?) ON CONFLICT DO NOTHING`,
				in.From, in.Scope, ms(at))
			if err != nil {
				return fmt.Errorf("store: record opt-out: %w", err)
			}
			r.OptOuts, _ = res.RowsAffected()
		case InboundStart:
			n, err := t.OptIn("sms", in.From)
			if err != nil {
				return err
			}
			r.OptOuts = n
		}
		err := t.queryRow(`INSERT INTO inbound(at,from_addr,to_addr,body,action,delivery_id,provider_id) VALUES(?,?,?,?,?,?,?) RETURNING id`,
			ms(at), in.From, in.To, in.Body, in.Action, in.DeliveryID, in.ProviderID).Scan(&r.ID)
		if err != nil {
			return fmt.Errorf("store: record inbound message: %w", err)
		}
		return nil
	})
	return r, err
}

// OptIn removes every opt-out of address (of kind), whatever its scope
// or source, and reports how many it removed.
func (t *Tx) OptIn(kind, address string) (int64, error) {
	res, err := t.exec(`DELETE FROM opt_outs WHERE kind=? AND address=?`, kind, address)
	if err != nil {
		return 0, fmt.Errorf("store: remove opt-out: %w", err)
	}
	return res.RowsAffected()
}

// OptIn removes every opt-out of address (of kind) outside any other
// transaction.
func (s *Store) OptIn(ctx context.Context, kind, address string) (int64, error) {
	var n int64
	err := s.Write(ctx, func(t *Tx) error {
		var err error
		n, err = t.OptIn(kind, address)
		return err
	})
	return n, err
}

// OptedOut reports whether address (of kind) is on the opt-out list.
func (s *Store) OptedOut(ctx context.Context, kind, address string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM opt_outs WHERE kind=? AND address=?`, kind, address).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: read opt-outs: %w", err)
	}
	return n > 0, nil
}

// InboundMessages lists the recorded inbound messages, oldest first.
func (s *Store) InboundMessages(ctx context.Context) ([]Inbound, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT at, from_addr, to_addr, body, action, delivery_id, provider_id FROM inbound ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list inbound messages: %w", err)
	}
	defer rows.Close()
	var out []Inbound
	for rows.Next() {
		var in Inbound
		var at int64
		if err := rows.Scan(&at, &in.From, &in.To, &in.Body, &in.Action, &in.DeliveryID, &in.ProviderID); err != nil {
			return nil, err
		}
		in.At = fromMS(at)
		out = append(out, in)
	}
	return out, rows.Err()
}

// KnownAddress reports whether address (of kind) belongs to a subscriber
// or was ever sent to: a reply from anyone else is from a stranger.
func (s *Store) KnownAddress(ctx context.Context, kind, address string) (bool, error) {
	col := map[string]string{"sms": "phone", "email": "email", "slack": "slack"}[kind]
	if col == "" {
		return false, fmt.Errorf("store: unknown address kind %q", kind)
	}
	var known bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM subscribers WHERE `+col+`=?) OR EXISTS(SELECT 1 FROM deliveries WHERE kind=? AND address=?)`,
		address, kind, address).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("store: look up address: %w", err)
	}
	return known, nil
}

// SMSAck is the delivery an ACK reply acknowledges and what the answer needs.
type SMSAck struct {
	DeliveryID int64
	IncidentID string // "" for a broadcast without an incident
	TimeZone   string // the recipient's, for times in the reply ("" if unknown)
}

// AckableByRef finds the delivery to address (of kind) that an "ACK
// <ref>" reply means: ref is a delivery id, or an incident id (any case)
// whose latest acknowledgeable delivery to that address is meant. Without
// a ref it is the latest acknowledgeable delivery to address. Only
// deliveries already sent count (see ackableSent). ErrNotFound when there
// is none.
func (s *Store) AckableByRef(ctx context.Context, kind, address, ref string) (SMSAck, error) {
	var id int64
	var err error
	switch n, perr := strconv.ParseInt(ref, 10, 64); {
	case ref == "":
		id, err = s.LatestAckable(ctx, kind, address)
	case perr == nil:
		err = s.r.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE id=? AND kind=? AND address=? AND `+ackableSent, n, kind, address).Scan(&id)
	default:
		err = s.r.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE kind=? AND address=? AND `+ackableSent+` AND UPPER(incident_id)=UPPER(?) ORDER BY id DESC LIMIT 1`,
			kind, address, ref).Scan(&id)
	}
	if errNoRows(err) {
		return SMSAck{}, fmt.Errorf("store: nothing to acknowledge for %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return SMSAck{}, err
	}
	return s.ackTarget(ctx, id)
}

func (s *Store) ackTarget(ctx context.Context, id int64) (SMSAck, error) {
	t := SMSAck{DeliveryID: id}
	err := s.r.QueryRowContext(ctx, `SELECT d.incident_id, COALESCE(sub.timezone,'') FROM deliveries d LEFT JOIN subscribers sub ON sub.id=d.subscriber_id WHERE d.id=?`, id).
		Scan(&t.IncidentID, &t.TimeZone)
	if err != nil {
		return t, fmt.Errorf("store: read delivery %d: %w", id, err)
	}
	return t, nil
}

// LogOptOutOverrides writes a delivery_events row for every delivery of
// triggerID that the planner queued despite an opt-out (reason
// opt_out_overridden, by the critical_overrides_opt_out policy): the
// delivery's own reason is overwritten when it is sent, the event keeps
// the override on record.
func (t *Tx) LogOptOutOverrides(triggerID int64) error {
	_, err := t.exec(`INSERT INTO delivery_events(delivery_id,at,status,reason,detail)
		SELECT id, created_at, status, reason, detail FROM deliveries WHERE trigger_id=? AND reason='opt_out_overridden'`, triggerID)
	if err != nil {
		return fmt.Errorf("store: log opt-out overrides: %w", err)
	}
	return nil
}
