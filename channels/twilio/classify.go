package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
)

// StatusAcceptedUnparsed is the Receipt.Status of a message Twilio
// accepted (HTTP 2xx) whose response body could not be read.
const StatusAcceptedUnparsed = "accepted-unparsed"

// accepted builds the receipt for a 2xx answer.
//
// A 2xx means Twilio created the message. If the body cannot be decoded
// (cut short, num_segments as a number where twilio-go expects a string,
// a proxy rewriting it), the message is still on its way. Returning an
// error would make the dispatcher send it again and the clinician would
// get it twice, so this is a success with Status "accepted-unparsed" and
// whatever SID the raw body shows; the status callback, keyed by
// d=<delivery id>, fills in the rest.
func accepted(a *attempt, msg *api.ApiV2010Message, err error) channels.Receipt {
	if err == nil && msg != nil && msg.Sid != nil && *msg.Sid != "" {
		r := channels.Receipt{ProviderID: *msg.Sid}
		if msg.Status != nil {
			r.Status = *msg.Status
		}
		if msg.NumSegments != nil {
			r.Segments, _ = strconv.Atoi(*msg.NumSegments)
		}
		return r
	}
	r := channels.Receipt{Status: StatusAcceptedUnparsed}
	var raw struct {
		Sid         string          `json:"sid"`
		NumSegments json.RawMessage `json:"num_segments"`
	}
	if json.Unmarshal(a.body, &raw) == nil && isSID(raw.Sid, "SM") {
		r.ProviderID = raw.Sid
		r.Segments, _ = strconv.Atoi(strings.Trim(string(raw.NumSegments), `"`))
		return r
	}
	r.ProviderID = findSID(string(a.body))
	return r
}

// findSID returns the first "SM" + 32 hex digits in s, or "".
func findSID(s string) string {
	for i := strings.Index(s, "SM"); i >= 0; {
		if i+34 <= len(s) && isSID(s[i:i+34], "SM") {
			return s[i : i+34]
		}
		j := strings.Index(s[i+2:], "SM")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return ""
}

// classify turns a failed CreateMessage into a channels.Error.
func (s *Sender) classify(a *attempt, m channels.Message, err error) error {
	retryAfter := retryAfterDelay(a.retryAfter, s.now())
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		code := strconv.Itoa(te.Code)
		if a.status == 0 {
			// twilio-go's own credential check (21222/21224) fails before
			// any request; Validate should have caught it.
			return channels.Permanent(channels.ReasonConfig, code, s.wrap(m, err,
				"twilio: credentials refused locally by twilio-go (error %d): check auth_token or api_key_secret", te.Code))
		}
		status := a.status
		wrapped := s.wrap(m, err, "twilio: HTTP %d, error %d: %s (%s)", status, te.Code, te.Message, te.MoreInfo)
		return apiFailure(status, te.Code, code, retryAfter, wrapped)
	}
	if a.status != 0 {
		// An error status whose body is not Twilio's JSON: a proxy, a load
		// balancer, or an api_base_url that is not Twilio's API.
		if a.readErr != nil {
			reason := channels.ReasonNetwork
			if isTimeout(a, a.readErr) {
				reason = channels.ReasonTimeout
			}
			return channels.Temporary(reason, httpCode(a.status), retryAfter,
				s.wrap(m, a.readErr, "twilio: HTTP %d, body cut short: %v", a.status, a.readErr))
		}
		wrapped := s.wrap(m, err, "twilio: HTTP %d with a body that is not Twilio's JSON error: %v", a.status, err)
		return plainFailure(a.status, retryAfter, wrapped)
	}
	// No response. The *url.Error from net/http names twilio-go's URL
	// (api.twilio.com) rather than where the request went, so name the
	// configured base instead.
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	// Once the request is written Twilio may have created the message, so
	// the failure is in doubt: a blind retry could send the SMS twice.
	temporary, sent := channels.Temporary, "the request was not sent"
	if a.wrote.Load() {
		temporary, sent = channels.InDoubt, "the request was sent, so the message may exist at Twilio"
	}
	if isTimeout(a, err) {
		why := "no answer within " + s.timeout.String()
		if ctxErr := a.ctx.Err(); ctxErr != nil {
			why = "stopped by the caller (" + ctxErr.Error() + ")"
		}
		return temporary(channels.ReasonTimeout, "", 0,
			s.wrap(m, err, "twilio: POST to %s: %s; %s", s.base.Redacted(), why, sent))
	}
	return temporary(channels.ReasonNetwork, "", 0,
		s.wrap(m, err, "twilio: POST to %s failed: %v; %s", s.base.Redacted(), cause, sent))
}

// apiFailure classifies a Twilio JSON error by HTTP status and Twilio code.
func apiFailure(status, twCode int, code string, retryAfter time.Duration, err error) error {
	if status == 429 || twCode == 20429 {
		return channels.Temporary(channels.ReasonRateLimited, code, retryAfter, err)
	}
	if reason, ok := codeReason(twCode); ok {
		return channels.Permanent(reason, code, err)
	}
	switch {
	case status == 401:
		return channels.Permanent(channels.ReasonAuth, code, err)
	case status >= 500:
		return channels.Temporary(channels.ReasonServer, code, retryAfter, err)
	default: // any other 4xx is about this message: 21602 no body, 21617 too long, ...
		return channels.Permanent(channels.ReasonRejected, code, err)
	}
}

// codeReason maps the Twilio error codes whose meaning is certain.
func codeReason(code int) (channels.Reason, bool) {
	switch code {
	case 21211, // To is not a valid phone number
		21612, // To is not reachable / routable from this sender
		21614, // To is not a mobile number
		21635, // To is a landline
		21217: // the destination number does not appear to be valid (a voice-API code; same meaning)
		// 21407 (number type cannot take SmsUrl) is about incoming-number
		// settings, not the recipient, so it stays "rejected".
		return channels.ReasonBadAddress, true
	case 21610: // the recipient replied STOP
		return channels.ReasonOptedOut, true
	case 20003: // authentication failed
		return channels.ReasonAuth, true
	case 20404, // account or Messaging Service SID not found
		21606, // From cannot send to this destination
		21408, // geographic permission for the destination not enabled
		21212, // From is not a valid number or sender ID
		21401, // From is not one of the account's SMS-enabled numbers or sender IDs
		21603, // From (or MessagingServiceSid) missing
		21659, // From is not a Twilio number or short code
		30034: // unregistered US A2P 10DLC sender
		return channels.ReasonConfig, true
	}
	return "", false
}

// plainFailure classifies an error status without a Twilio JSON body.
func plainFailure(status int, retryAfter time.Duration, err error) error {
	code := httpCode(status)
	switch {
	case status == 429:
		return channels.Temporary(channels.ReasonRateLimited, code, retryAfter, err)
	case status == 408:
		return channels.Temporary(channels.ReasonTimeout, code, retryAfter, err)
	case status >= 500:
		return channels.Temporary(channels.ReasonServer, code, retryAfter, err)
	case status == 401 || status == 407:
		return channels.Permanent(channels.ReasonAuth, code, err)
	default:
		// Twilio's API answers every 4xx with JSON, so this is not Twilio:
		// pause the channel rather than fail every recipient one by one.
		return channels.Permanent(channels.ReasonConfig, code, err)
	}
}

// httpCode is the Code for a failure that carries no Twilio error code.
func httpCode(status int) string { return "http_" + strconv.Itoa(status) }

func isTimeout(a *attempt, err error) bool {
	var ne net.Error
	return a.ctx.Err() != nil ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.As(err, &ne) && ne.Timeout()
}

// sendError is a failure whose text has been made safe for the delivery
// log: no credential and no full phone number.
type sendError struct {
	msg string
	err error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// wrap formats the error text, then removes credentials and masks the
// recipient's number. The error stays in the chain (so errors.As still
// finds a *client.TwilioRestError) only in a cleaned form: a Twilio error
// is copied with its message cleaned and its details dropped, and any other
// error whose text would need cleaning is dropped from the chain.
func (s *Sender) wrap(m channels.Message, err error, format string, args ...any) error {
	msg := s.clean(m, fmt.Sprintf(format, args...))
	var inner error
	var te *client.TwilioRestError
	switch {
	case errors.As(err, &te):
		cp := *te
		cp.Message, cp.MoreInfo, cp.Details = s.clean(m, te.Message), s.clean(m, te.MoreInfo), nil
		inner = &cp
	case err != nil && s.clean(m, err.Error()) == err.Error():
		inner = err
	}
	return &sendError{msg: msg, err: inner}
}

// clean replaces credentials with <secret> and masks the recipient's number.
func (s *Sender) clean(m channels.Message, text string) string {
	for _, sec := range s.secrets {
		text = strings.ReplaceAll(text, sec, fields.Redacted)
	}
	if addr := strings.TrimSpace(m.Address); len(addr) > 4 {
		masked := maskNumber(addr)
		text = strings.ReplaceAll(text, addr, masked)
		if bare := strings.TrimPrefix(addr, "+"); bare != addr {
			text = strings.ReplaceAll(text, bare, masked)
		}
	}
	return text
}

// secretForms lists the ways a credential could show up in text: itself,
// and the Basic authorization value built from it.
func secretForms(user, pass string) []string {
	if pass == "" {
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return []string{basic, pass}
}

// maskNumber keeps the first three and last two characters of a phone
// number ("+44*******56"): enough to tell numbers apart in a log, not
// enough to dial.
func maskNumber(n string) string {
	if len(n) <= 6 {
		return strings.Repeat("*", len(n))
	}
	return n[:3] + strings.Repeat("*", len(n)-5) + n[len(n)-2:]
}
