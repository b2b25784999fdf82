package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/crier-dev/crier/channels"
)

// okFalseReason maps the error word of an HTTP 200 {"ok":false} answer to
// a reason and whether a retry may help. Unknown words are permanent
// rejections: Slack understood the request and refused it.
func okFalseReason(word string) (reason channels.Reason, temporary bool) {
	switch word {
	case "ratelimited", "rate_limited":
		return channels.ReasonRateLimited, true
	case "internal_error", "fatal_error", "service_unavailable", "request_timeout":
		return channels.ReasonServer, true
	case "channel_not_found", "not_in_channel", "is_archived", "channel_is_archived":
		// The destination is wrong or closed to the bot: this recipient only.
		return channels.ReasonBadAddress, false
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
		"no_permission", "restricted_action", "ekm_access_denied", "team_access_not_granted":
		// The token cannot post anywhere: channel-wide, the dispatcher pauses.
		return channels.ReasonAuth, false
	case "missing_scope", "not_allowed_token_type":
		// The app is installed without what it needs: fixed in its setup.
		return channels.ReasonConfig, false
	default:
		// msg_too_long, invalid_blocks, no_text, invalid_arguments and the
		// rest: this message is wrong, and a retry would send it again.
		return channels.ReasonRejected, false
	}
}

// classify turns a slack-go error into a channels.Error. op names the call
// ("chat.postMessage to C123"); webhook says which endpoint answered,
// because an incoming webhook reports a revoked URL as a plain 403/404/410.
// The returned error never contains the token or the webhook URL.
func (s *Sender) classify(op string, err error, webhook bool) error {
	wrapped := &opError{op: op, err: s.scrub(err)}

	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return channels.Temporary(channels.ReasonRateLimited, "429", rl.RetryAfter, wrapped)
	}
	var se slack.SlackErrorResponse // a value type in slack-go
	if errors.As(err, &se) {
		r, temporary := okFalseReason(se.Err)
		if temporary {
			return channels.Temporary(r, se.Err, 0, wrapped)
		}
		return channels.Permanent(r, se.Err, wrapped)
	}
	var sc slack.StatusCodeError // also a value type
	if errors.As(err, &sc) {
		code := strconv.Itoa(sc.Code)
		switch {
		case sc.Code >= 500:
			return channels.Temporary(channels.ReasonServer, code, 0, wrapped)
		case sc.Code == 429: // no Retry-After header, or RateLimitedError above
			return channels.Temporary(channels.ReasonRateLimited, code, 0, wrapped)
		case sc.Code >= 300 && sc.Code < 400:
			// Redirects are refused (they would carry the token elsewhere):
			// the configured URL is not the endpoint itself.
			return channels.Permanent(channels.ReasonConfig, code, wrapped)
		case webhook && (sc.Code == 403 || sc.Code == 404 || sc.Code == 410):
			// action_prohibited, no_service, channel_is_archived: the webhook
			// itself is dead, so every message would fail the same way.
			return channels.Permanent(channels.ReasonConfig, code, wrapped)
		case !webhook && (sc.Code == 401 || sc.Code == 403):
			return channels.Permanent(channels.ReasonAuth, code, wrapped)
		case !webhook && sc.Code == 404:
			// The Web API answers unknown methods with 404: api_url is wrong.
			return channels.Permanent(channels.ReasonConfig, code, wrapped)
		default:
			return channels.Permanent(channels.ReasonRejected, code, wrapped)
		}
	}
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		// slack-go fails to parse a Retry-After that is an HTTP date; the
		// only number it parses on this path is that header of a 429.
		return channels.Temporary(channels.ReasonRateLimited, "429", 0, wrapped)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return channels.Temporary(channels.ReasonTimeout, "", 0, wrapped)
	case errors.Is(err, context.Canceled):
		// The caller gave up (shutdown); the message may or may not have
		// left, and the dispatcher decides what a retry means.
		return channels.Temporary(channels.ReasonNetwork, "", 0, wrapped)
	case isTransport(err):
		return channels.Temporary(channels.ReasonNetwork, "", 0, wrapped)
	case isDecode(err):
		// HTTP 200 with a body that is not Slack's JSON: a proxy or an outage page.
		return channels.Temporary(channels.ReasonServer, "invalid_response", 0, wrapped)
	}
	return channels.Temporary(channels.ReasonUnknown, "", 0, wrapped)
}

func isTransport(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func isDecode(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// opError adds the call to an error without repeating "slack" at every
// level: "slack chat.postMessage to C123: channel_not_found".
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "slack " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// scrub returns err unchanged when its text holds no credential, and
// otherwise an error with the credential replaced. A *url.Error keeps its
// cause (so timeouts stay recognisable) with its URL redacted.
func (s *Sender) scrub(err error) error {
	if err == nil || !s.hasSecret(err.Error()) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) && !s.hasSecret(ue.Err.Error()) {
		// Keep scheme and host: they say where a dial or DNS lookup failed.
		shown := "<secret>"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			shown = u.Scheme + "://" + u.Host + "/<secret>"
		}
		return &url.Error{Op: ue.Op, URL: shown, Err: ue.Err}
	}
	return errors.New(s.redact(err.Error()))
}

func (s *Sender) hasSecret(msg string) bool {
	for _, v := range s.secrets {
		if strings.Contains(msg, v) {
			return true
		}
	}
	return false
}

func (s *Sender) redact(msg string) string {
	for _, v := range s.secrets { // longest first, so a whole URL goes before its path
		msg = strings.ReplaceAll(msg, v, "<secret>")
	}
	return msg
}

// secretForms lists the spellings under which a credential can show up in
// an error: the token itself; a webhook URL as given, as re-encoded by
// net/url, and its path (the secret part), longest first. Forms shorter
// than 8 bytes are left out so that a redaction cannot eat ordinary text.
func secretForms(token, webhook string) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 8 {
			out = append(out, v)
		}
	}
	add(token)
	if webhook != "" {
		add(webhook)
		if u, err := url.Parse(webhook); err == nil {
			add(u.String())
			add(u.EscapedPath())
			add(u.Path)
		}
	}
	// Longest first: "https://h/services/X" must go before "/services/X".
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}
