package email

import (
	"context"
	"errors"
	"io"
	"net/textproto"
	"strconv"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

// stage is the point of an SMTP transaction a failure happened at.
type stage int

const (
	stageMail stage = iota + 1 // MAIL FROM (for a pipelined group, also writing it, with BDAT the message too)
	stageRcpt                  // RCPT TO
	stageData                  // DATA, up to the 354 reply
	stageBody                  // writing the message and the final "."
	stageEnd                   // waiting for the reply to the final "." or to BDAT LAST
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
	// unread says a reply of the transaction could not be read at all
	// (the connection failed, or the reply did not parse): the replies
	// that follow, if any, cannot be matched to their commands.
	unread bool
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
// whole message was written and its reply was lost. With BDAT that is
// after MAIL FROM and RCPT TO were accepted: a connection lost before
// their replies is told as lost at MAIL FROM or RCPT TO, as with DATA.
func (e *sendError) maybeSent() bool { return e.stage == stageEnd && e.refused() == nil }

// send runs one transaction for o, bounded by ctx as well as the timeout,
// and returns the text of the server's final reply.
func (c *conn) send(ctx context.Context, o *outgoing) (string, error) {
	release := c.raw.bind(ctx)
	defer release()
	// An idle connection's deadline has long passed: one timeout covers the
	// whole transaction.
	_ = c.raw.SetDeadline(time.Now().Add(c.timeout))
	switch {
	case c.chunking:
		return c.sendChunked(o)
	case c.pipelining:
		return c.sendPipelined(o)
	}
	return c.sendStepwise(o)
}

// sendChunked writes MAIL FROM, RCPT TO and "BDAT <size> LAST" with the
// whole message at once (RFC 3030 with RFC 2920) and reads the three
// replies in order: one round trip, and the message is neither
// dot-stuffed nor ended by ".".
func (c *conn) sendChunked(o *outgoing) (string, error) {
	c.writeChunked(c.sc.Text.W, o)
	if err := c.sc.Text.W.Flush(); err != nil {
		// Lost while writing: the server cannot have accepted part of a
		// chunk.
		return "", &sendError{stage: stageMail, err: err, desync: true}
	}
	reply, failed := c.readGroup(true)
	if failed != nil {
		return "", failed
	}
	return reply, nil
}

// textWriter is what the commands are written to: the connection's
// buffered writer, or a buffer a batch is assembled in.
type textWriter interface {
	io.Writer
	io.StringWriter
}

// writeChunked writes o's MAIL FROM, RCPT TO and BDAT LAST, and the
// message as the chunk, to w. Write errors stay in a buffered writer for
// its Flush to report.
func (c *conn) writeChunked(w textWriter, o *outgoing) {
	c.writeEnvelope(w, o)
	head, rest := o.chunk()
	_, _ = w.WriteString("BDAT ")
	_, _ = w.WriteString(strconv.Itoa(len(head) + len(rest)))
	_, _ = w.WriteString(" LAST\r\n")
	_, _ = w.Write(head)
	_, _ = w.Write(rest)
}

// sendPipelined writes MAIL FROM, RCPT TO and DATA at once (RFC 2920),
// reads their three replies in order, and on 354 sends the message: two
// round trips in all.
func (c *conn) sendPipelined(o *outgoing) (string, error) {
	c.writeGroup(o)
	if err := c.sc.Text.W.Flush(); err != nil {
		return "", &sendError{stage: stageMail, err: err}
	}
	if _, failed := c.readGroup(false); failed != nil {
		return "", failed
	}
	if o.shared != nil {
		return c.sendMessage(o, nil)
	}
	return c.sendMessage(o, c.sc.Text.DotWriter())
}

// writeGroup buffers o's MAIL FROM, RCPT TO and DATA, unflushed.
func (c *conn) writeGroup(o *outgoing) {
	c.writeEnvelope(c.sc.Text.W, o)
	_, _ = c.sc.Text.W.WriteString("DATA\r\n")
}

// writeEnvelope writes o's MAIL FROM and RCPT TO to w.
func (c *conn) writeEnvelope(w textWriter, o *outgoing) {
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
	_, _ = w.WriteString("\r\n")
}

// readGroup reads the replies to a pipelined MAIL FROM, RCPT TO and DATA
// in order, or with chunked to MAIL FROM, RCPT TO and BDAT LAST. nil
// means the server answered DATA with 354 and waits for the message, or
// accepted the message with the reply whose text it returns.
func (c *conn) readGroup(chunked bool) (string, *sendError) {
	t := c.sc.Text
	last := stageData
	expect := [...]int{250, 25, 354}
	if chunked {
		last, expect[2] = stageEnd, 250
	}
	var failed *sendError
	var reply string
	for i, st := range [...]stage{stageMail, stageRcpt, last} {
		_, msg, err := t.ReadResponse(expect[i])
		if err == nil {
			if failed != nil && st == last {
				// 354 although the transaction had failed: the server
				// now waits for a message that will not come. Or the
				// message accepted without a sender or recipient: the
				// server is not following the transaction.
				failed.desync = true
			}
			reply = msg
			continue
		}
		se := &sendError{stage: st, err: err}
		if se.refused() == nil {
			// No reply (the connection is lost, or the reply did not
			// parse). An earlier refusal is still the better account of
			// what happened.
			if failed == nil {
				failed = se
			}
			failed.desync, failed.unread = true, true
			return "", failed
		}
		if failed == nil {
			failed = se
		}
	}
	if failed != nil {
		return "", failed
	}
	return reply, nil
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
// MAIL (or with BDAT, the write of the whole message) met a closed line,
// or the "421 4.4.2 idle timeout" the server left behind when it hung up.
// Nothing was accepted.
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
	if c.outOfStep {
		return false
	}
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
