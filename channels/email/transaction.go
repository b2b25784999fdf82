package email

import (
	"context"
	"errors"
	"io"
	"net/textproto"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

// stage is the point of an SMTP transaction a failure happened at.
type stage int

const (
	stageMail stage = iota + 1 // MAIL FROM (for a pipelined group, also writing it)
	stageRcpt                  // RCPT TO
	stageData                  // DATA, up to the 354 reply
	stageBody                  // writing the message and the final "."
	stageEnd                   // waiting for the reply to the final "."
)

func (s stage) String() string {
	switch s {
	case stageMail:
		return "MAIL FROM"
	case stageRcpt:
		return "RCPT TO"
	case stageData:
		return "DATA"
	case stageBody:
		return "sending the message"
	case stageEnd:
		return "waiting for the reply to the message"
	}
	return "SMTP"
}

// sendError is a failed transaction: the stage and what went wrong there,
// a *textproto.Error when the server refused, otherwise the I/O or
// protocol error that lost the connection.
type sendError struct {
	stage stage
	err   error
	// desync says the connection is mid-message or out of step with the
	// server's replies, so it must not carry another message.
	desync bool
}

func (e *sendError) Error() string { return e.stage.String() + ": " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// refused returns the server's refusal, or nil when the failure is not a
// reply (the connection failed or the caller gave up).
func (e *sendError) refused() *textproto.Error {
	var te *textproto.Error
	if errors.As(e.err, &te) {
		return te
	}
	return nil
}

// maybeSent reports whether the server may have accepted the message: the
// whole message was written and its reply was lost.
func (e *sendError) maybeSent() bool { return e.stage == stageEnd && e.refused() == nil }

// send runs one transaction for o, bounded by ctx as well as the timeout,
// and returns the text of the server's final reply.
func (c *conn) send(ctx context.Context, o *outgoing) (string, error) {
	release := c.raw.bind(ctx)
	defer release()
	// An idle connection's deadline has long passed: one timeout covers the
	// whole transaction.
	_ = c.raw.SetDeadline(time.Now().Add(c.timeout))
	if c.pipelining {
		return c.sendPipelined(o)
	}
	return c.sendStepwise(o)
}

// sendPipelined writes MAIL FROM, RCPT TO and DATA at once (RFC 2920),
// reads their three replies in order, and on 354 sends the message: two
// round trips in all.
func (c *conn) sendPipelined(o *outgoing) (string, error) {
	c.writeGroup(o)
	if err := c.sc.Text.W.Flush(); err != nil {
		return "", &sendError{stage: stageMail, err: err}
	}
	if failed := c.readGroup(); failed != nil {
		return "", failed
	}
	if o.shared != nil {
		return c.sendMessage(o, nil)
	}
	return c.sendMessage(o, c.sc.Text.DotWriter())
}

// writeGroup buffers o's MAIL FROM, RCPT TO and DATA, unflushed.
func (c *conn) writeGroup(o *outgoing) {
	w := c.sc.Text.W
	_, _ = w.WriteString("MAIL FROM:")
	_, _ = w.WriteString(o.from)
	if c.eightBitMIME {
		_, _ = w.WriteString(" BODY=8BITMIME")
	}
	if o.utf8 && c.smtpUTF8 {
		_, _ = w.WriteString(" SMTPUTF8")
	}
	_, _ = w.WriteString("\r\nRCPT TO:")
	_, _ = w.WriteString(o.rcpt)
	_, _ = w.WriteString("\r\nDATA\r\n")
}

// readGroup reads the replies to a pipelined MAIL FROM, RCPT TO and DATA
// in order. nil means the server answered DATA with 354 and waits for the
// message.
func (c *conn) readGroup() *sendError {
	t := c.sc.Text
	var failed *sendError
	for _, st := range [...]struct {
		stage  stage
		expect int
	}{{stageMail, 250}, {stageRcpt, 25}, {stageData, 354}} {
		_, _, err := t.ReadResponse(st.expect)
		if err == nil {
			if failed != nil && st.stage == stageData {
				// 354 although the transaction had failed: the server
				// now waits for a message that will not come.
				failed.desync = true
			}
			continue
		}
		se := &sendError{stage: st.stage, err: err}
		if se.refused() == nil {
			// No reply (the connection is lost, or the reply did not
			// parse). An earlier refusal is still the better account of
			// what happened.
			if failed == nil {
				failed = se
			}
			failed.desync = true
			return failed
		}
		if failed == nil {
			failed = se
		}
	}
	return failed
}

// sendStepwise is the transaction one command at a time, through
// go-mail's client, for a server that does not offer PIPELINING.
func (c *conn) sendStepwise(o *outgoing) (string, error) {
	c.sc.SkipSMTPUTF8(!o.utf8)
	if err := c.sc.Mail(o.from); err != nil {
		return "", &sendError{stage: stageMail, err: err}
	}
	if err := c.sc.Rcpt(o.rcpt); err != nil {
		return "", &sendError{stage: stageRcpt, err: err}
	}
	w, err := c.sc.Data()
	if err != nil {
		return "", &sendError{stage: stageData, err: err}
	}
	// The dot writer itself, so that writing the message and reading the
	// reply are told apart.
	if dc, ok := w.(*smtp.DataCloser); ok {
		w = dc.WriteCloser
	}
	return c.sendMessage(o, w)
}

// sendMessage writes the message after a 354, ends it with ".", and reads
// the final reply. dw is the DotWriter to write it through; nil writes a
// shared content's stuffed form straight to the connection.
func (c *conn) sendMessage(o *outgoing, dw io.WriteCloser) (string, error) {
	var err error
	if dw == nil {
		if err = o.writeData(c.sc.Text.W); err == nil {
			err = c.sc.Text.W.Flush()
		}
	} else if err = o.writeTo(dw); err == nil {
		err = dw.Close()
	}
	if err != nil {
		return "", &sendError{stage: stageBody, err: err, desync: true}
	}
	_, reply, err := c.sc.Text.ReadResponse(250)
	if err != nil {
		se := &sendError{stage: stageEnd, err: err}
		se.desync = se.refused() == nil
		return "", se
	}
	return reply, nil
}

// stale reports whether err says the server had hung up on this idle
// connection before our message began, so a resend on a fresh one is safe:
// MAIL met a closed line, or the "421 4.4.2 idle timeout" the server left
// behind when it hung up. Nothing was accepted.
func (c *conn) stale(err error) bool {
	var se *sendError
	if !errors.As(err, &se) || se.stage != stageMail {
		return false
	}
	if te := se.refused(); te != nil {
		return te.Code == 421
	}
	return hungUp(c.raw.ioErr()) || hungUp(se.err)
}

// keep reports whether the connection is fit for the next message.
func (c *conn) keep(err error) bool {
	if err == nil {
		return true
	}
	if c.raw.failed() {
		return false
	}
	var se *sendError
	if !errors.As(err, &se) || se.desync {
		return false
	}
	if te := se.refused(); te == nil || te.Code == 421 {
		return false
	}
	// The server refused this message but is still talking: end the
	// transaction before the next one.
	return c.sc.Reset() == nil
}
