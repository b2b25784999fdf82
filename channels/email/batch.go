package email

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/crier-dev/crier/channels"
)

var _ channels.BatchSender = (*Sender)(nil)

// batchItem is one message of a batch on its way through SendBatch.
type batchItem struct {
	m   *channels.Message
	o   *outgoing
	id  string
	out *channels.Result // where its outcome goes

	reply string // the final reply's text, once sent
	err   error  // the transaction's failure (a *sendError), unclassified
}

// SendBatch sends ms over one connection and returns one result per
// message, in order. With PIPELINING each message's data and "." go out in
// one write with the next message's MAIL FROM, RCPT TO and DATA (RFC 2920
// 3.1), so a message costs one round trip; with CHUNKING too, every
// message of the batch is written before any reply is read, so the batch
// costs one round trip (see sendChunks for what a lost connection leaves
// in doubt); without PIPELINING the messages go one after the other,
// stepwise.
//
// The configured timeout applies per message: the connection's deadline
// is renewed whenever a message's commands or data are written, and, with
// CHUNKING, a window's write has it once per message it carries and each
// message's replies have it afresh.
//
// A message the server never took any of (no 354 came; with BDAT, its
// chunk was cut short, or nothing of the batch was answered) because the
// connection was lost, or because the server said it was closing (421),
// is sent on a fresh connection within the call, and so are the messages
// after it. A connection that delivered nothing before it was lost is
// replaced once per call; one that delivered a message, or that a server
// left out of step by answering DATA with 354 after a refused recipient,
// is always replaced: each of those settled a message, so the dials stay
// bounded by the batch's length. The first message on a connection is
// not tried again (Send would report its failure), except that, as in
// Send, a pooled connection the server had hung up on while it was idle
// is redialled before anything is reported.
func (s *Sender) SendBatch(ctx context.Context, ms []channels.Message) []channels.Result {
	out := make([]channels.Result, len(ms))
	items := make([]batchItem, 0, len(ms))
	for i := range ms {
		o, id, err := s.prepare(ms[i])
		if err != nil {
			out[i].Err = err
			continue
		}
		items = append(items, batchItem{m: &ms[i], o: o, id: id, out: &out[i]})
	}
	if len(items) == 0 {
		return out
	}
	fail := func(rest []batchItem, err error) {
		for i := range rest {
			rest[i].out.Err = err
		}
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		fail(items, s.classifyDial(ctx, err))
		return out
	}
	fresh := c == nil
	if fresh {
		if c, err = s.pool.dial(ctx); err != nil {
			s.pool.release(nil)
			fail(items, s.classifyDial(ctx, err))
			return out
		}
	}
	spare := true // the one replacement for a connection that delivered nothing
	for {
		var n int
		var stop *sendError
		switch {
		case c.chunking:
			n, stop = c.sendChunks(ctx, items)
		case c.pipelining:
			n, stop = c.sendBatch(ctx, items)
		default:
			n, stop = c.sendEach(ctx, items)
		}
		if n == 0 && stop != nil && !fresh && ended(ctx) == nil && c.stale(stop) {
			// The server had hung up on the idle connection: nothing
			// reached it.
			c.discard()
			fresh = true
			if c, err = s.pool.dial(ctx); err != nil {
				s.pool.release(nil)
				fail(items, s.classifyDial(ctx, err))
				return out
			}
			continue
		}
		if n == 0 && stop != nil {
			// The first message on a connection failed: it is reported
			// as Send would report it, not tried again.
			items[0].err = stop
			n = 1
		}
		delivered := false
		for i := range items[:n] {
			s.settle(ctx, &items[i], c)
			delivered = delivered || items[i].err == nil
		}
		rest := items[n:]
		if len(rest) == 0 {
			if c.keep(items[n-1].err) {
				s.pool.release(c)
			} else {
				c.discard()
				s.pool.release(nil)
			}
			return out
		}
		c.discard()
		if stop != nil {
			// Lost: a fresh connection for the rest, within bounds.
			if ended(ctx) != nil || (!delivered && !spare) {
				s.pool.release(nil)
				fail(rest, s.classifySend(ctx, stop, c))
				return out
			}
			spare = spare && delivered
		}
		if c, err = s.pool.dial(ctx); err != nil {
			s.pool.release(nil)
			fail(rest, s.classifyDial(ctx, err))
			return out
		}
		fresh = true
		items = rest
	}
}

// settle turns the outcome of the item's transaction on c into its result.
func (s *Sender) settle(ctx context.Context, it *batchItem, c *conn) {
	if it.err != nil {
		it.out.Err = s.classifySend(ctx, it.err, c)
		return
	}
	it.out.Receipt = receipt(it.m, it.id, it.reply)
}

// sendBatch runs the transactions of items in order on c, pipelined
// across messages. It records the outcome of items[:n] and returns n; the
// server took nothing of items[n:] (no 354 came). stop says why: the
// connection was lost or is closing, and stop is what the rest are told
// if no other connection takes them; or nil when the connection is only
// out of step with the server after a refused message.
func (c *conn) sendBatch(ctx context.Context, items []batchItem) (n int, stop *sendError) {
	release := c.raw.bind(ctx)
	defer release()
	t := c.sc.Text
	c.renew()
	c.writeGroup(items[0].o)
	if err := t.W.Flush(); err != nil {
		return 0, &sendError{stage: stageMail, err: err}
	}
	rset := false // items[i]'s group follows an RSET
	for i := range items {
		it := &items[i]
		if rset {
			if _, _, err := t.ReadResponse(250); err != nil {
				return i, c.cut(rsetFailed(err))
			}
		}
		if _, se := c.readGroup(false); se != nil {
			if se.unaccepted() {
				return i, se
			}
			it.err = se
			switch {
			case se.desync && c.raw.failed():
				return i + 1, c.cut(se.err)
			case se.desync:
				// 354 after a refusal: the server waits for a message
				// that will not come.
				return i + 1, nil
			case i+1 == len(items):
				return i + 1, nil
			}
			// End the refused transaction before the next one.
			c.renew()
			_, _ = t.W.WriteString("RSET\r\n")
			c.writeGroup(items[i+1].o)
			if err := t.W.Flush(); err != nil {
				return i + 1, c.cut(err)
			}
			rset = true
			continue
		}
		rset = false
		c.renew()
		writeData(t.W, it.o)
		if i+1 < len(items) {
			c.writeGroup(items[i+1].o)
		}
		if err := t.W.Flush(); err != nil {
			it.err = &sendError{stage: stageBody, err: err, desync: true}
			return i + 1, c.cut(err)
		}
		_, reply, err := t.ReadResponse(250)
		if err != nil {
			se := &sendError{stage: stageEnd, err: err}
			it.err = se
			if te := se.refused(); te == nil || te.Code == 421 {
				// Lost, or closing: the next group (if any) went out
				// with the "." and will get no answer.
				se.desync = te == nil
				return i + 1, c.cut(err)
			}
			// Ending the data ended the transaction (RFC 5321 4.1.1.4):
			// the next group needs no RSET.
			continue
		}
		it.reply = reply
	}
	return len(items), nil
}

// sendChunks runs the transactions of items on c for a server that offers
// CHUNKING as well as PIPELINING, and reports as sendBatch does. Every
// message of a window (the whole batch, unless its messages are large) is
// written at once before any reply is read: the first as MAIL FROM, RCPT
// TO and BDAT LAST with the whole message, each later one the same behind
// an RSET, so that it starts clean whatever became of the one before
// (RFC 2920 and RFC 3030 4.2 let BDAT and RSET be pipelined). The replies
// are then read in order: a window costs one round trip, not one a
// message. The write has the timeout once per message it carries; the
// replies have it afresh, renewed after each message's.
//
// Each message is judged by its own replies: accepted, refused, or in
// doubt. A message is in doubt when the connection was lost, timed out or
// answered unreadably before the reply to its BDAT, or when its RSET was
// refused: the server may have read and accepted it, and any message
// written after it, with the replies lost. Only two cases leave messages
// not taken, for a fresh connection: the server said it was closing (421)
// before them, or nothing of the batch was answered and the server had
// hung up (a connection it had already dropped). A failed write leaves
// the message it cut short, and those after, not taken (a server takes no
// part of a chunk). A server that accepts a message although a command
// of its transaction was refused is out of step: the batch's replies are
// still read, but the connection carries nothing more.
func (c *conn) sendChunks(ctx context.Context, items []batchItem) (n int, stop *sendError) {
	release := c.raw.bind(ctx)
	defer release()
	for n < len(items) {
		// A window of messages is written at once: all of them, unless
		// they are large.
		to, size := n, 0
		for to < len(items) && (to == n || size < maxWindow) {
			size += items[to].o.size()
			to++
		}
		var done int
		done, stop = c.sendWindow(items, n, to)
		if stop != nil || done < to || c.outOfStep {
			return done, stop // an out-of-step connection carries nothing more
		}
		n = to
	}
	return n, nil
}

// maxWindow is about the most message bytes sendChunks assembles and
// writes at once.
const maxWindow = 1 << 20

// sendWindow writes items[from:to] at once, each after the batch's first
// behind an RSET, then reads their replies, and reports as sendChunks
// does: the messages before the returned index are settled.
func (c *conn) sendWindow(items []batchItem, from, to int) (int, *sendError) {
	t := c.sc.Text
	// The window is assembled apart, so that a failed write says exactly
	// which messages went out whole: ends[i] is where items[from+i] ends.
	buf := &c.batch
	buf.Reset()
	ends := make([]int, to-from)
	for i := from; i < to; i++ {
		if i > 0 {
			_, _ = buf.WriteString("RSET\r\n")
		}
		c.writeChunked(buf, items[i].o)
		ends[i-from] = buf.Len()
	}
	// The write gets the timeout once for each message it carries.
	_ = c.raw.SetDeadline(time.Now().Add(c.timeout * time.Duration(to-from)))
	written := to
	lost := t.W.Flush() // the write that failed; nothing is buffered before a window
	if lost == nil {
		// Larger than the writer's buffer, the window goes straight to the
		// connection; smaller, it is copied there and flushed.
		nn, err := t.W.Write(buf.Bytes())
		if err == nil {
			err = t.W.Flush()
		}
		if err != nil {
			lost = err
			out := nn - t.W.Buffered() // the bytes that reached the connection
			written = from
			for written < to && ends[written-from] <= out {
				written++
			}
		}
	} else {
		written = from
	}
	if buf.Cap() > 2*maxWindow {
		c.batch = bytes.Buffer{} // do not keep a large message's memory
	}
	// inDoubt settles items[i:written] as maybe sent after err lost them.
	inDoubt := func(i int, err error) (int, *sendError) {
		for ; i < written; i++ {
			items[i].err = &sendError{stage: stageEnd, err: err, desync: true}
		}
		return written, c.cut(err)
	}
	// heard: the server is known to have been reading this batch. A write
	// cut short by a timeout, not by a hang-up, reached a live server.
	heard := from > 0 || (lost != nil && written > from && !hungUp(lost))
	c.renew() // the replies get the timeout afresh, however long the write took
	for i := from; i < written; i++ {
		it := &items[i]
		if i > 0 {
			if _, _, err := t.ReadResponse(250); err != nil {
				var te *textproto.Error
				if errors.As(err, &te) && te.Code == 421 {
					return i, c.cut(err) // closing: the rest were not taken
				}
				// Lost, unreadable, or RSET refused (a server that may be
				// reading the stream out of step): whatever it made of
				// this message and those after, it may have taken them.
				return inDoubt(i, rsetFailed(err))
			}
		}
		reply, se := c.readGroup(true)
		c.renew()
		if se == nil {
			it.reply = reply
			heard = true
			continue
		}
		te := se.refused()
		// desync without unread: accepted after a refusal, handled below.
		if se.unaccepted() && (se.unread || !se.desync) {
			if te == nil && !heard && se.stage == stageMail && (hungUp(c.raw.ioErr()) || hungUp(se.err)) {
				// Nothing of the batch was answered and the server had
				// hung up: a connection it had already dropped. Nothing
				// was taken.
				return i, se
			}
			if te != nil {
				return i, se // closing (421) before the message: not taken
			}
			// Lost, timed out or unreadable while the server may have
			// been working through the batch.
			return inDoubt(i, se.err)
		}
		heard = true
		switch {
		case se.unread:
			// A reply was lost or unreadable after this message's own
			// refusal (it was not sent) or acceptance of part of it: the
			// replies after cannot be matched to their messages.
			if te == nil {
				return inDoubt(i, se.err)
			}
			it.err = se
			return inDoubt(i+1, se.err)
		case te != nil && te.Code == 421 && !se.desync:
			it.err = se
			return i + 1, c.cut(se.err) // closing: the rest were not taken
		case se.desync:
			// Accepted although an earlier command was refused: the
			// server is not following the transactions. A refused
			// recipient got nothing; after a 421 the message may have
			// been taken.
			it.err = se
			if te != nil && te.Code == 421 {
				it.err = &sendError{stage: stageEnd, err: fmt.Errorf("message accepted after %v", te), desync: true}
			}
			c.outOfStep = true
			continue
		}
		it.err = se
	}
	if lost != nil {
		// Lost while writing: the server cannot have accepted part of a
		// chunk, nor anything after it.
		return written, &sendError{stage: stageMail, err: lost, desync: true}
	}
	return to, nil
}

// sendEach runs the transactions of items one after the other on c with
// the stepwise code, for a server without PIPELINING, and reports as
// sendBatch does.
func (c *conn) sendEach(ctx context.Context, items []batchItem) (n int, stop *sendError) {
	release := c.raw.bind(ctx)
	defer release()
	for i := range items {
		it := &items[i]
		c.renew()
		if i > 0 && items[i-1].err != nil {
			// The previous transaction was refused on a connection that
			// is still fine: end it first.
			if err := c.sc.Reset(); err != nil {
				return i, c.cut(rsetFailed(err))
			}
		}
		reply, err := c.sendStepwise(it.o)
		if err == nil {
			it.reply = reply
			continue
		}
		var se *sendError
		if !errors.As(err, &se) {
			se = &sendError{stage: stageMail, err: err, desync: true}
		}
		if se.unaccepted() {
			return i, se
		}
		it.err = se
		if te := se.refused(); te == nil || te.Code == 421 || se.desync || c.raw.failed() {
			return i + 1, c.cut(se.err)
		}
	}
	return len(items), nil
}

// renew gives the next step of a transaction the configured timeout.
func (c *conn) renew() { _ = c.raw.SetDeadline(time.Now().Add(c.timeout)) }

// cut is what the messages after a failure that ended the connection are
// told when no other connection takes them: err, the failure, unless it is
// one message's own refusal, which says nothing about them.
func (c *conn) cut(err error) *sendError {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code != 421 {
		if err = c.raw.ioErr(); err == nil {
			err = errors.New("the server's replies are out of step with the commands")
		}
	}
	return &sendError{stage: stageMail, err: err, desync: true}
}

// rsetFailed is a failed RSET: a refusal other than 421 says the server is
// out of step, not that the next message was refused.
func rsetFailed(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code != 421 {
		return errors.New("RSET refused: " + te.Error())
	}
	return err
}

// unaccepted reports whether the server took nothing of the message (no
// 354 came; with BDAT, the chunk was cut short or MAIL FROM or RCPT TO
// went unanswered) because the connection was lost or the server said it
// was closing: sending it on another connection is safe.
func (e *sendError) unaccepted() bool {
	if e.stage > stageData {
		return false
	}
	te := e.refused()
	return te == nil || te.Code == 421
}

// writeData buffers o's message as DATA carries it: dot-stuffed and ended
// by ".". Write errors stay in w for its Flush to report.
func writeData(w *bufio.Writer, o *outgoing) {
	if o.shared != nil {
		_ = o.writeData(w)
		return
	}
	// The DotWriter flushes on Close, which would split the message from
	// the next group: stuff it apart.
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	dw := textproto.NewWriter(bw).DotWriter()
	_ = o.writeTo(dw)
	_ = dw.Close()
	_, _ = w.Write(b.Bytes())
}

// receipt is what Send returns for m, accepted with the final reply's
// text reply and the Message-ID id.
func receipt(m *channels.Message, id, reply string) channels.Receipt {
	thread := m.Thread
	if thread == "" {
		thread = id
	}
	status := "250"
	if reply != "" {
		status += " " + reply
	}
	return channels.Receipt{ProviderID: id, Status: status, Thread: thread}
}
