package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/twilio/twilio-go/client"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// Twilio's webhooks: status callbacks (receipts) and inbound SMS. Both are
// signed with the account's auth token over the URL Twilio was given plus
// the sorted form fields; crier checks that signature before it reads
// anything else, so a forged request changes nothing.

// The routes of Twilio's webhooks, also the route names passed to
// Options.WebhookObserved.
const (
	TwilioStatusPath  = "/webhooks/twilio/status"
	TwilioInboundPath = "/webhooks/twilio/inbound"
)

// TwilioStore is what the Twilio webhooks read and change.
type TwilioStore interface {
	ReceiptDelivery(ctx context.Context, d, sid string) (int64, error)
	ApplyReceipt(ctx context.Context, deliveryID int64, sid, status, errorCode string) (bool, error)
	RecordInbound(ctx context.Context, in store.Inbound) (store.InboundResult, error)
	KnownAddress(ctx context.Context, kind, address string) (bool, error)
	AckableByRef(ctx context.Context, kind, address, ref string) (store.SMSAck, error)
	RecordAck(ctx context.Context, deliveryID int64, via, detail string) (store.AckResult, error)
}

// TwilioOptions configure the Twilio webhooks. Without an AuthToken and a
// PublicURL they are not served (404): an unverifiable webhook must not
// change anything.
type TwilioOptions struct {
	// AuthToken is the Twilio account's auth token (webhooks.twilio_auth_token).
	AuthToken fields.Secret
	// PublicURL is server.public_url, the base of the URLs Twilio calls and
	// signs. Behind a proxy the Host header is not that URL, so the
	// request's own host is never used.
	PublicURL string
	Store     TwilioStore
	// Replies are the texts and the digit of two-way SMS.
	Replies SMSReplies
	// Notify, if set, is called after a receipt changed a delivery (an
	// escalation engine may want to look at a fresh failure).
	Notify func(deliveryID int64)
}

// SMSReplies configure answers to inbound SMS (sms_replies in the config).
type SMSReplies struct {
	HelpText    string
	UnknownText string
	// AckDigit is a one-character reply that means ACK ("" for none).
	AckDigit string
}

// twilioHooks serves both Twilio routes.
type twilioHooks struct {
	s         *Server
	o         TwilioOptions
	validator client.RequestValidator // its methods have pointer receivers: keep the value here
	base      string                  // PublicURL without a trailing slash
}

// registerTwilio serves the Twilio webhooks when they can be verified.
func (s *Server) registerTwilio() {
	o := s.o.Twilio
	if o == nil || !o.AuthToken.IsSet() || o.PublicURL == "" || o.Store == nil {
		return
	}
	h := &twilioHooks{s: s, o: *o, validator: client.NewRequestValidator(o.AuthToken.Reveal()), base: strings.TrimRight(o.PublicURL, "/")}
	s.route("POST", TwilioStatusPath, "", h.status)
	s.route("POST", TwilioInboundPath, "", h.inbound)
}

// observe reports one webhook request's outcome to the metrics hook.
func (s *Server) observe(route, outcome string) {
	if s.o.WebhookObserved != nil {
		s.o.WebhookObserved(route, outcome)
	}
}

// verify parses the form and checks X-Twilio-Signature against the public
// URL of this route with the request's raw query. It answers 403 (or 400,
// 413) itself and returns false when the request must not be acted on.
func (h *twilioHooks) verify(w http.ResponseWriter, r *http.Request, route string) (url.Values, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, h.s.o.MaxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.s.observe(route, "too_large")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		h.s.observe(route, "bad_request")
		http.Error(w, "bad form body", http.StatusBadRequest)
		return nil, false
	}
	sig := r.Header.Get("X-Twilio-Signature")
	signed := h.base + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		signed += "?" + r.URL.RawQuery
	}
	// Only the body's fields are signed; ParseForm also mixes the query
	// into r.Form, so r.PostForm is what the signature covers.
	params := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		params[k] = v[0]
	}
	if sig == "" || !h.validator.Validate(signed, params, sig) {
		outcome := "forged"
		if sig == "" {
			outcome = "unsigned"
		}
		h.s.observe(route, outcome)
		// The URL, not the signature, helps an operator: a mismatch is
		// usually server.public_url differing from the URL Twilio calls.
		h.s.o.Log.Warn("twilio webhook refused: signature does not match", "route", route, "outcome", outcome, "signed_url", signed)
		http.Error(w, "invalid signature", http.StatusForbidden)
		return nil, false
	}
	return r.PostForm, true
}

// status applies a message status callback to its delivery.
func (h *twilioHooks) status(w http.ResponseWriter, r *http.Request) {
	form, ok := h.verify(w, r, TwilioStatusPath)
	if !ok {
		return
	}
	sid := first(form.Get("MessageSid"), form.Get("SmsSid"))
	status := first(form.Get("MessageStatus"), form.Get("SmsStatus"))
	code := form.Get("ErrorCode")
	if !store.KnownReceiptStatus(status) {
		h.s.observe(TwilioStatusPath, "bad_request")
		h.s.o.Log.Warn("twilio status callback with an unknown status", "status", status, "message_sid", sid)
		http.Error(w, "unknown MessageStatus", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	id, err := h.o.Store.ReceiptDelivery(ctx, r.URL.Query().Get("d"), sid)
	if errors.Is(err, store.ErrNotFound) {
		h.s.observe(TwilioStatusPath, "unknown_delivery")
		h.s.o.Log.Warn("twilio status callback for no known delivery", "d", r.URL.Query().Get("d"), "message_sid", sid, "status", status)
		http.Error(w, "no such delivery", http.StatusNotFound)
		return
	}
	if err != nil {
		h.fail(w, TwilioStatusPath, err)
		return
	}
	changed, err := h.o.Store.ApplyReceipt(ctx, id, sid, status, code)
	if err != nil {
		h.fail(w, TwilioStatusPath, err)
		return
	}
	outcome := "duplicate" // or stale: nothing moved
	if changed {
		outcome = "applied"
		if h.o.Notify != nil {
			h.o.Notify(id)
		}
	}
	h.s.observe(TwilioStatusPath, outcome)
	h.s.o.Log.Debug("twilio receipt", "delivery", id, "status", status, "error_code", code, "outcome", outcome)
	w.WriteHeader(http.StatusNoContent)
}

// fail answers 500 for a store failure; Twilio shows it in its debugger.
func (h *twilioHooks) fail(w http.ResponseWriter, route string, err error) {
	h.s.observe(route, "error")
	h.s.o.Log.Error("twilio webhook failed", "route", route, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
