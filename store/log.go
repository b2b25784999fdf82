package store

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// LogEntry is one delivery as the log shows it.
type LogEntry struct {
	ID         int64  `json:"id"`
	Kind       string `json:"kind"`
	Channel    string `json:"channel"`
	Subscriber string `json:"subscriber"`
	Address    string `json:"address"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	Detail     string `json:"detail,omitempty"`
	Attempts   int    `json:"attempts"`
	ProviderID string `json:"provider_id"`
	// Segments is crier's own count of an SMS's parts, from planning;
	// ProviderSegments the provider's (Twilio's num_segments), when it
	// said. They differ when the provider encodes differently.
	Segments         int       `json:"segments,omitempty"`
	ProviderSegments int       `json:"provider_segments,omitempty"`
	Trigger          string    `json:"trigger"`
	TriggerKind      string    `json:"trigger_kind"`
	IncidentID       string    `json:"incident_id,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	SentAt           time.Time `json:"sent_at,omitzero"`
	NextAttempt      time.Time `json:"next_attempt_at,omitzero"`
	// AttemptAt is when the latest provider request started.
	AttemptAt time.Time `json:"attempt_started_at,omitzero"`
	// What the provider said afterwards (a Twilio status callback).
	ProviderStatus string    `json:"provider_status,omitempty"`
	ErrorCode      string    `json:"error_code,omitempty"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
	// Acknowledgement, and the delivery this one escalates.
	AckedAt      time.Time `json:"acked_at,omitzero"`
	AckVia       string    `json:"ack_via,omitempty"`
	EscalatesID  int64     `json:"escalates,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	Text         string    `json:"text,omitempty"`
	HTML         string    `json:"html,omitempty"`
	TriggerID    int64     `json:"-"`
	SubscriberID string    `json:"-"`
}

// LogFilter selects deliveries; zero fields select everything.
type LogFilter struct {
	IncidentID string
	Status     string
	Channel    string
	Kind       string
	Subscriber string
	Trigger    string // trigger key
	TriggerIDs []int64
	Since      time.Time
	AfterID    int64 // cursor: only ids greater than this
	Limit      int   // 0 = no limit
	WithBody   bool
	// RedactAckLinks replaces the token of every acknowledgement link
	// (/ack/<token>) in the bodies: a link acknowledges for its recipient,
	// so whoever reads the log must not be able to use it.
	RedactAckLinks bool
}

// ackLink matches the token of an acknowledgement link.
var ackLink = regexp.MustCompile(`/ack/[A-Za-z0-9_-]{16,}`)

// RedactAckLinks replaces acknowledgement-link tokens in s.
func RedactAckLinks(s string) string { return ackLink.ReplaceAllString(s, "/ack/<redacted>") }

// Log calls fn for each delivery matching f, in id order.
func (s *Store) Log(ctx context.Context, f LogFilter, fn func(*LogEntry) error) error {
	cond, args := "1=1", []any{}
	add := func(c string, v any) { cond += " AND " + c; args = append(args, v) }
	if f.IncidentID != "" {
		add("d.incident_id=?", f.IncidentID)
	}
	if f.Status != "" {
		add("d.status=?", f.Status)
	}
	if f.Channel != "" {
		add("d.channel=?", f.Channel)
	}
	if f.Kind != "" {
		add("d.kind=?", f.Kind)
	}
	if f.Subscriber != "" {
		add("d.subscriber_id=?", f.Subscriber)
	}
	if f.Trigger != "" {
		add("t.key=?", f.Trigger)
	}
	if !f.Since.IsZero() {
		add("d.created_at>=?", ms(f.Since))
	}
	if f.AfterID > 0 {
		add("d.id>?", f.AfterID)
	}
	if len(f.TriggerIDs) > 0 {
		cond += " AND d.trigger_id IN (" + placeholders(len(f.TriggerIDs)) + ")"
		for _, id := range f.TriggerIDs {
			args = append(args, id)
		}
	}
	body := "'', '', ''"
	if f.WithBody {
		body = "COALESCE(m.subject,''), COALESCE(m.text,''), COALESCE(m.html,'')"
	}
	q := `SELECT d.id, d.kind, d.channel, d.subscriber_id, d.address, d.status, d.reason, d.detail, d.attempts, d.provider_id, d.segments, d.provider_segments,
		t.key, t.kind, t.id, d.incident_id, d.created_at, d.updated_at, d.sent_at, d.next_at, d.attempt_at,
		d.provider_status, d.error_code, d.delivered_at, d.acked_at, d.ack_via, d.escalates_id, ` + body + `
		FROM deliveries d JOIN triggers t ON t.id=d.trigger_id LEFT JOIN messages m ON m.id=d.message_id
		WHERE ` + cond + ` ORDER BY d.id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: read log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e LogEntry
		var created, updated, sent, next, attempt, delivered, acked int64
		if err := rows.Scan(&e.ID, &e.Kind, &e.Channel, &e.Subscriber, &e.Address, &e.Status, &e.Reason, &e.Detail, &e.Attempts, &e.ProviderID, &e.Segments, &e.ProviderSegments,
			&e.Trigger, &e.TriggerKind, &e.TriggerID, &e.IncidentID, &created, &updated, &sent, &next, &attempt,
			&e.ProviderStatus, &e.ErrorCode, &delivered, &acked, &e.AckVia, &e.EscalatesID, &e.Subject, &e.Text, &e.HTML); err != nil {
			return fmt.Errorf("store: scan log: %w", err)
		}
		e.SubscriberID = e.Subscriber
		e.CreatedAt, e.UpdatedAt, e.SentAt = fromMS(created), fromMS(updated), fromMS(sent)
		e.DeliveredAt, e.AckedAt, e.AttemptAt = fromMS(delivered), fromMS(acked), fromMS(attempt)
		if f.RedactAckLinks {
			e.Subject, e.Text, e.HTML = RedactAckLinks(e.Subject), RedactAckLinks(e.Text), RedactAckLinks(e.HTML)
		}
		if e.Status == StatusQueued {
			e.NextAttempt = fromMS(next)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Event is one status change of a delivery.
type Event struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Events lists a delivery's recorded status changes, oldest first.
func (s *Store) Events(ctx context.Context, deliveryID int64) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT at, status, reason, detail FROM delivery_events WHERE delivery_id=? ORDER BY rowid`, deliveryID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&at, &e.Status, &e.Reason, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Counts returns the number of deliveries per status, optionally for some
// triggers only.
func (s *Store) Counts(ctx context.Context, triggerIDs []int64) (map[string]int, error) {
	cond, args := inTriggers("1=1", nil, "trigger_id", triggerIDs)
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM deliveries WHERE `+cond+` GROUP BY status`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// ScheduleRun is one recorded occurrence of a briefing schedule.
type ScheduleRun struct {
	Schedule  string
	DueAt     time.Time
	FiredAt   time.Time
	Late      bool
	TriggerID int64
	Error     string
}

// RecordRun stores that schedule's occurrence due at due was fired. It
// returns false when that occurrence was already recorded (it must not
// fire twice).
func (s *Store) RecordRun(ctx context.Context, r ScheduleRun) (bool, error) {
	var created bool
	err := s.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`INSERT INTO schedule_runs(schedule,due_at,fired_at,late,trigger_id,error) VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
			r.Schedule, ms(r.DueAt), ms(r.FiredAt), r.Late, r.TriggerID, r.Error)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return nil
	})
	return created, err
}

// FinishRun records the trigger (or error) of an occurrence already claimed by RecordRun.
func (s *Store) FinishRun(ctx context.Context, schedule string, due time.Time, triggerID int64, errText string) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE schedule_runs SET trigger_id=?, error=? WHERE schedule=? AND due_at=?`, triggerID, errText, schedule, ms(due))
		return err
	})
}

// LastRun returns the latest recorded occurrence of schedule, or ok=false.
func (s *Store) LastRun(ctx context.Context, schedule string) (ScheduleRun, bool, error) {
	var r ScheduleRun
	var due, fired int64
	var trig *int64
	err := s.r.QueryRowContext(ctx, `SELECT schedule, due_at, fired_at, late, trigger_id, error FROM schedule_runs WHERE schedule=? ORDER BY due_at DESC LIMIT 1`, schedule).
		Scan(&r.Schedule, &due, &fired, &r.Late, &trig, &r.Error)
	if errNoRows(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	r.DueAt, r.FiredAt = fromMS(due), fromMS(fired)
	if trig != nil {
		r.TriggerID = *trig
	}
	return r, true, nil
}

// RunOutcome says what became of one scheduled occurrence: whether it was
// recorded (fired), its trigger and error, and how its deliveries stand.
type RunOutcome struct {
	Fired      bool
	Run        ScheduleRun
	Sent       int // sent or delivered
	Pending    int // queued or sending
	Failed     int // failed, expired or unknown
	Suppressed int
}

// RunOutcome reads what became of schedule's occurrence due at due.
func (s *Store) RunOutcome(ctx context.Context, schedule string, due time.Time) (RunOutcome, error) {
	var o RunOutcome
	var fired int64
	var trig *int64
	err := s.r.QueryRowContext(ctx, `SELECT fired_at, late, trigger_id, error FROM schedule_runs WHERE schedule=? AND due_at=?`, schedule, ms(due)).
		Scan(&fired, &o.Run.Late, &trig, &o.Run.Error)
	if errNoRows(err) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("store: read run of %s: %w", schedule, err)
	}
	o.Fired = true
	o.Run.Schedule, o.Run.DueAt, o.Run.FiredAt = schedule, due, fromMS(fired)
	if trig == nil || *trig == 0 {
		return o, nil
	}
	o.Run.TriggerID = *trig
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM deliveries WHERE trigger_id=? GROUP BY status`, *trig)
	if err != nil {
		return o, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return o, err
		}
		switch st {
		case StatusSent, StatusDelivered:
			o.Sent += n
		case StatusQueued, StatusSending:
			o.Pending += n
		case StatusSuppressed:
			o.Suppressed += n
		default:
			o.Failed += n
		}
	}
	return o, rows.Err()
}

// LogColumns are the CSV columns of the delivery log (crier log --csv and
// the API's export); LogBodyColumns follow them when bodies are included.
var (
	LogColumns = []string{"id", "kind", "channel", "subscriber", "address", "status", "reason", "detail", "attempts", "provider_id", "segments",
		"trigger", "trigger_kind", "incident_id", "created_at", "updated_at", "sent_at",
		// Later additions go at the end, so a script reading columns by
		// position keeps working.
		"provider_segments", "attempt_started_at"}
	LogBodyColumns = []string{"subject", "text", "html"}
)

// CSVRow is e as a row under LogColumns (and LogBodyColumns with body):
// times in RFC 3339 with fractions, empty for never.
func (e *LogEntry) CSVRow(body bool) []string {
	row := []string{strconv.FormatInt(e.ID, 10), e.Kind, e.Channel, e.Subscriber, e.Address, e.Status, e.Reason, e.Detail,
		strconv.Itoa(e.Attempts), e.ProviderID, strconv.Itoa(e.Segments), e.Trigger, e.TriggerKind, e.IncidentID,
		csvTime(e.CreatedAt), csvTime(e.UpdatedAt), csvTime(e.SentAt), strconv.Itoa(e.ProviderSegments), csvTime(e.AttemptAt)}
	if body {
		row = append(row, e.Subject, e.Text, e.HTML)
	}
	return row
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}
