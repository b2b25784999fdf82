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
		return s.interrupted(cause, err)
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

// classifySend reads a failure during the transaction. go-mail reports
// network failures and timeouts as *mail.SendError with code 0 and
// IsTemp() false, so the reply code decides, and for code 0 the
// connection's own record of what went wrong.
func (s *Sender) classifySend(ctx context.Context, err error, c *conn) error {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return s.classifyDial(ctx, err)
	}
	wrapped := s.scrub(fmt.Errorf("email: %w", err))
	code := se.ErrorCode()
	if code == 0 {
		switch se.Reason {
		case mail.ErrGetSender, mail.ErrGetRcpts:
			return channels.Permanent(channels.ReasonRejected, "", wrapped)
		case mail.ErrNoUnencoded:
			return channels.Permanent(channels.ReasonConfig, "", wrapped)
		}
		if cause := ended(ctx); cause != nil {
			return s.interrupted(cause, err)
		}
		if ioErr := c.raw.ioErr(); ioErr != nil && isTimeout(ioErr) {
			return channels.Temporary(channels.ReasonTimeout, "", 0, wrapped)
		}
		return channels.Temporary(channels.ReasonNetwork, "", 0, wrapped)
	}
	codeStr := strconv.Itoa(code)
	switch {
	case isAuthCode(code):
		return channels.Permanent(channels.ReasonAuth, codeStr, wrapped)
	case code >= 500 && se.Reason == mail.ErrSMTPRcptTo && badAddress(code, enhancedCode(se)):
		return channels.Permanent(channels.ReasonBadAddress, codeStr, wrapped)
	case code >= 500:
		return channels.Permanent(channels.ReasonRejected, codeStr, wrapped)
	default:
		// 4xx, 421 included: the server is busy, greylisting or going
		// down; none of that is about rate.
		return channels.Temporary(channels.ReasonServer, codeStr, 0, wrapped)
	}
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

// interrupted is the caller's context ending mid-send.
func (s *Sender) interrupted(cause, err error) error {
	reason := channels.ReasonUnknown
	if errors.Is(cause, context.DeadlineExceeded) {
		reason = channels.ReasonTimeout
	}
	return channels.Temporary(reason, "", 0, s.scrub(fmt.Errorf("email: %w: %w", cause, err)))
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

// enhancedCode is the reply's enhanced status code; go-mail only fills it
// when the server advertised ENHANCEDSTATUSCODES, so read the text too.
func enhancedCode(se *mail.SendError) string {
	if c := se.EnhancedStatusCode(); c != "" {
		return c
	}
	return enhancedCodeRE().FindString(se.Error())
}
