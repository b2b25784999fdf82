package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/crier-dev/crier/channels"
)

// classifyDial reads a failure to connect, greet, secure or authenticate:
// these concern the channel, not the recipient.
func (s *Sender) classifyDial(ctx context.Context, err error) error {
	if errors.Is(err, ErrClosed) {
		return channels.Temporary(channels.ReasonUnknown, "", 0, err)
	}
	if cause := ended(ctx); cause != nil {
		return s.interrupted(cause, err, false)
	}
	wrapped := s.scrub(fmt.Errorf("email: connect to %s: %w", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), err))
	var te *textproto.Error
	if errors.As(err, &te) {
		code := strconv.Itoa(te.Code)
		switch {
		case isAuthCode(te.Code):
			return channels.Permanent(channels.ReasonAuth, code, wrapped)
		case te.Code >= 500:
			// Refused at greeting, EHLO or AUTH: every message would be.
			return channels.Permanent(channels.ReasonConfig, code, wrapped)
		default:
			return channels.Temporary(channels.ReasonServer, code, 0, wrapped)
		}
	}
	if isConfigError(err) {
		return channels.Permanent(channels.ReasonConfig, "", wrapped)
	}
	if isTimeout(err) {
		return channels.Temporary(channels.ReasonTimeout, "", 0, wrapped)
	}
	return channels.Temporary(channels.ReasonNetwork, "", 0, wrapped)
}

// classifySend reads a failed transaction: the server's reply code when
// it refused (and at which stage), otherwise the connection's own record
// of what went wrong. A failure after the whole message was written,
// waiting for its reply, may have delivered it: that one is in doubt.
func (s *Sender) classifySend(ctx context.Context, err error, c *conn) error {
	var se *sendError
	if !errors.As(err, &se) {
		return s.classifyDial(ctx, err)
	}
	wrapped := s.scrub(fmt.Errorf("email: %w", err))
	if te := se.refused(); te != nil {
		code := strconv.Itoa(te.Code)
		switch {
		case isAuthCode(te.Code):
			return channels.Permanent(channels.ReasonAuth, code, wrapped)
		case te.Code >= 500 && se.stage == stageRcpt && badAddress(te.Code, enhancedCode(te.Msg)):
			return channels.Permanent(channels.ReasonBadAddress, code, wrapped)
		case te.Code >= 500:
			return channels.Permanent(channels.ReasonRejected, code, wrapped)
		default:
			// 4xx, 421 included: the server is busy, greylisting or going
			// down; none of that is about rate.
			return channels.Temporary(channels.ReasonServer, code, 0, wrapped)
		}
	}
	maybeSent := se.maybeSent()
	if cause := ended(ctx); cause != nil {
		return s.interrupted(cause, err, maybeSent)
	}
	temporary := channels.Temporary
	if maybeSent {
		temporary = channels.InDoubt
	}
	if isTimeout(se.err) || isTimeout(c.raw.ioErr()) {
		return temporary(channels.ReasonTimeout, "", 0, wrapped)
	}
	return temporary(channels.ReasonNetwork, "", 0, wrapped)
}

// ended is ctx.Err(), or DeadlineExceeded as soon as the deadline has
// passed: a connection deadline clamped to it can fire before the
// context's own timer does.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// badAddress reads a 5xx answer to RCPT: 5.1.x is about the address
// whatever the basic code, and 550/551/553 are too unless the enhanced
// code says policy (5.7.x, "relaying denied"), which is not the address's
// fault and would wrongly mark the subscriber's address as bad.
func badAddress(code int, enhanced string) bool {
	if strings.HasPrefix(enhanced, "5.1.") {
		return true
	}
	return (code == 550 || code == 551 || code == 553) && !strings.HasPrefix(enhanced, "5.7.")
}

// interrupted is the caller's context ending mid-send; maybeSent when
// it ended while the reply to a whole message was awaited.
func (s *Sender) interrupted(cause, err error, maybeSent bool) error {
	reason := channels.ReasonUnknown
	if errors.Is(cause, context.DeadlineExceeded) {
		reason = channels.ReasonTimeout
	}
	temporary := channels.Temporary
	if maybeSent {
		temporary = channels.InDoubt
	}
	return temporary(reason, "", 0, s.scrub(fmt.Errorf("email: %w: %w", cause, err)))
}

// isAuthCode: 530 authentication required, 534 mechanism too weak,
// 535 bad credentials, 538 encryption required for the mechanism.
func isAuthCode(code int) bool { return code == 530 || code == 534 || code == 535 || code == 538 }

// isConfigError reports failures that only a config change fixes: TLS that
// cannot be agreed or verified, STARTTLS or AUTH not offered, a password
// that would go out unencrypted.
func isConfigError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	if errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) {
		return true
	}
	for _, target := range []error{smtp.ErrUnencrypted, smtp.ErrWrongHostname,
		mail.ErrPlainAuthNotSupported, mail.ErrLoginAuthNotSupported,
		mail.ErrCramMD5AuthNotSupported, mail.ErrSCRAMSHA256AuthNotSupported} {
		if errors.Is(err, target) {
			return true
		}
	}
	// go-mail builds these two without a sentinel (client.go tls and auth).
	msg := err.Error()
	return strings.Contains(msg, "does not support STARTTLS") || strings.Contains(msg, "does not support SMTP AUTH")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// enhancedCodeRE finds an RFC 3463 code in a reply's text.
func enhancedCodeRE() *regexp.Regexp { return regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`) }

// enhancedCode is the RFC 3463 code in a reply's text, "" if none. It is
// read whether or not the server advertised ENHANCEDSTATUSCODES.
func enhancedCode(reply string) string {
	return enhancedCodeRE().FindString(reply)
}
