// Package channels defines what crier needs of a delivery channel: one
// message, sent once, with every failure classified so that the dispatcher
// (the only place that retries) knows what to do next.
package channels

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind is the kind of address a channel delivers to. Templates, segment
// counting and subscriber addresses are chosen by kind, so a sandbox
// instance of kind sms behaves like Twilio except that it never leaves the
// process.
type Kind string

// The channel kinds crier knows.
const (
	KindSMS   Kind = "sms"
	KindEmail Kind = "email"
	KindSlack Kind = "slack"
)

// Kinds lists every kind in a stable order.
var Kinds = []Kind{KindSMS, KindEmail, KindSlack}

// ParseKind returns the Kind named s, or an error that names the valid ones.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown channel kind %q (want sms, email or slack)", s)
}

// Channel is one configured delivery channel instance (for example the
// "clinician-sms" Twilio account). Send makes exactly one attempt: it never
// sleeps and never retries. Every error it returns should be built with
// Permanent or Temporary so that Classify can read it; an unclassified error
// is treated as temporary.
type Channel interface {
	// Name is the instance name from config; it is what the delivery log shows.
	Name() string
	// Kind is the kind of address this channel delivers to.
	Kind() Kind
	// Send delivers one message once.
	Send(ctx context.Context, m Message) (Receipt, error)
}

// BatchSender is a Channel that sends several messages more cheaply
// together than one at a time (SMTP: one connection, each message's
// commands pipelined behind the previous message). The dispatcher hands it
// messages it has already paced and checked; the results are in the same
// order, one per message, each as Send would have returned it.
type BatchSender interface {
	Channel
	SendBatch(ctx context.Context, ms []Message) []Result
}

// Reconciler is a Channel that can ask its provider, after the fact,
// whether it has a message crier may have sent: a request that timed out,
// or that was under way when crier stopped. The dispatcher asks it about
// deliveries in doubt instead of leaving them to an operator.
type Reconciler interface {
	Channel
	Reconcile(ctx context.Context, q Query) (Reconciliation, error)
}

// Query describes a message in doubt.
type Query struct {
	DeliveryID int64
	Address    string
	Text       string
	// Since is when the request that may have created it started; the
	// provider's record of it cannot be older (allowing for clock skew).
	Since time.Time
	// Taken reports whether a provider id is already on record for
	// another delivery: that message is not this one.
	Taken func(providerID string) (bool, error)
}

// Reconciliation is what a provider's records say of a message in doubt.
type Reconciliation struct {
	// Found: the provider has it; Receipt says which message and its status.
	Found   bool
	Receipt Receipt
	// Undecided: the provider's records could not say either way (for
	// example a message to the address without its text): crier must
	// neither mark it sent nor send it again.
	Undecided bool
	// Detail says what was looked at, for the log.
	Detail string
}

// Result is one message's outcome in a batch.
type Result struct {
	Receipt Receipt
	Err     error
}

// Message is one rendered message for one address.
type Message struct {
	// DeliveryID is the delivery's row id in the log.
	DeliveryID int64
	// Key is the delivery's idempotency key (trigger × subscriber × channel).
	// It is stable across retries, so channels derive provider-side
	// identifiers from it (for example the email Message-ID).
	Key string
	// Address is the destination: an E.164 phone number, an email address
	// or a Slack channel ID.
	Address string
	// Subject is the email subject or the Slack header; SMS ignores it.
	Subject string
	// Text is the plain-text body (the SMS text, the email text part, the
	// Slack message text).
	Text string
	// HTML is the email HTML part; empty means text only.
	HTML string
	// IncidentID is the incident the message is about, if any.
	IncidentID string
	// Thread is the reference that an earlier Receipt for the same incident
	// and destination returned (Slack "channel/ts", an email Message-ID).
	// Empty for the first message of a thread.
	Thread string
	// ThreadSummary is a one-line current status of the incident. A channel
	// that keeps a parent message (Slack) edits the parent to show it when
	// it posts a reply into the thread.
	ThreadSummary string
	// Metadata carries extra values the channel may attach (delivery id,
	// incident id, trigger); never secrets.
	Metadata map[string]string
}

// Receipt is what a provider said when it accepted a message.
type Receipt struct {
	// ProviderID identifies the message at the provider: a Twilio SID,
	// Slack "channel/ts", an SMTP Message-ID.
	ProviderID string
	// Segments is the number of SMS segments the provider reports (0 if
	// not applicable).
	Segments int
	// Status is the provider's own status word ("queued", "accepted", "250 OK").
	Status string
	// Thread is the reference later messages of the same incident to the
	// same destination pass back in Message.Thread. Empty when the channel
	// does not thread.
	Thread string
	// ErrorCode is the provider's error code for a message it could not
	// deliver (a reconciled Twilio message that failed), if any.
	ErrorCode string
}

// Reason is a short fixed word stored in the delivery log that says why a
// delivery failed or was suppressed.
type Reason string

// The reasons a send can fail.
const (
	ReasonRateLimited Reason = "rate_limited"
	ReasonServer      Reason = "server"
	ReasonNetwork     Reason = "network"
	ReasonTimeout     Reason = "timeout"
	ReasonAuth        Reason = "auth"
	ReasonBadAddress  Reason = "bad_address"
	ReasonOptedOut    Reason = "opted_out"
	ReasonRejected    Reason = "rejected"
	ReasonConfig      Reason = "config"
	ReasonUnknown     Reason = "unknown"
)

// ChannelWide reports whether a failure with this reason says the channel
// itself is broken (bad credentials, a sender that cannot send) rather than
// something about one recipient. The dispatcher pauses the channel instead
// of spending each recipient's attempts on it.
func (r Reason) ChannelWide() bool { return r == ReasonAuth || r == ReasonConfig }

// Error is a classified send failure.
type Error struct {
	Reason     Reason
	Retryable  bool
	RetryAfter time.Duration // the provider's Retry-After, 0 if none
	Code       string        // the provider's own error code ("21211", "550", "channel_not_found")
	// MaybeSent says the provider may have accepted the message: the
	// request was written before the answer was lost (a timeout, a dropped
	// connection, a cancel mid-request). A retry may deliver it twice, so
	// the dispatcher applies the channel's in_doubt policy instead.
	MaybeSent bool
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Retryable {
		kind = "temporary"
	}
	msg := fmt.Sprintf("%s failure (%s", kind, e.Reason)
	if e.Code != "" {
		msg += " " + e.Code
	}
	msg += ")"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying will not fix.
func Permanent(reason Reason, code string, err error) error {
	return &Error{Reason: reason, Code: code, Err: err}
}

// Temporary marks err as a failure worth retrying, no sooner than
// retryAfter (0 when the provider gave no hint).
func Temporary(reason Reason, code string, retryAfter time.Duration, err error) error {
	return &Error{Reason: reason, Retryable: true, RetryAfter: retryAfter, Code: code, Err: err}
}

// InDoubt marks err as a temporary failure after which the provider may
// nevertheless have the message (Error.MaybeSent): the request went out
// and its answer was lost.
func InDoubt(reason Reason, code string, retryAfter time.Duration, err error) error {
	return &Error{Reason: reason, Retryable: true, RetryAfter: retryAfter, Code: code, MaybeSent: true, Err: err}
}

// MaybeSent reports whether a Send error says the provider may have
// accepted the message despite the failure.
func MaybeSent(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.MaybeSent
}
