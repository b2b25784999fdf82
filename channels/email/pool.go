package email

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// pool keeps up to PoolSize connections. A slot is taken for every
// connection that is open or being dialled, so there are never more than
// PoolSize connections to the server, idle ones included.
type pool struct {
	cfg   Config
	tls   *tls.Config
	base  []mail.Option
	slots chan struct{}
	// noChunking sends with DATA even to a server that offers CHUNKING,
	// so tests can compare the two.
	noChunking bool

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

func newPool(c Config, tc *tls.Config) *pool {
	opts := []mail.Option{
		// Port and policy are always explicit: go-mail's defaults are 25
		// and mandatory STARTTLS.
		mail.WithPort(c.Port),
		mail.WithTimeout(c.Timeout),
		mail.WithHELO(c.HELO),
		mail.WithTLSConfig(tc),
	}
	switch c.TLS {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case TLSImplicit:
		// The dial function does the TLS handshake itself; WithSSL only
		// keeps go-mail from trying STARTTLS on top.
		opts = append(opts, mail.WithSSL(), mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if c.Username != "" {
		auth := map[string]mail.SMTPAuthType{
			AuthPlain: mail.SMTPAuthPlain, AuthLogin: mail.SMTPAuthLogin,
			AuthCramMD5: mail.SMTPAuthCramMD5, AuthScramSHA256: mail.SMTPAuthSCRAMSHA256,
		}[c.Auth]
		opts = append(opts, mail.WithSMTPAuth(auth),
			mail.WithUsername(c.Username), mail.WithPassword(c.Password.Reveal()))
	}
	return &pool{cfg: c, tls: tc, base: opts, slots: make(chan struct{}, c.PoolSize)}
}

// acquire takes a slot and returns an idle connection, or nil when the
// caller must dial one. The slot is given back by release.
func (p *pool) acquire(ctx context.Context) (*conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		<-p.slots
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return c, nil
	}
	return nil, nil
}

// release returns c (nil when it was discarded) and its slot.
func (p *pool) release(c *conn) {
	if c != nil {
		p.mu.Lock()
		if !p.closed {
			p.idle = append(p.idle, c)
			c = nil
		}
		p.mu.Unlock()
		if c != nil {
			c.quit()
		}
	}
	<-p.slots
}

// close says QUIT on every idle connection; busy ones quit on release.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Go(c.quit)
	}
	wg.Wait()
}

// dial opens, secures and authenticates one connection.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	c := &conn{timeout: p.cfg.Timeout}
	release := func() {}
	dialFn := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.raw = &trackedConn{Conn: nc}
		// Bound by the caller's context, not go-mail's dial context,
		// which it cancels as soon as the greeting is done.
		release = c.raw.bind(ctx)
		if p.cfg.TLS != TLSImplicit {
			return c.raw, nil
		}
		// TLS on top of the tracked connection, so its failures and
		// deadlines are seen; go-mail's own implicit TLS would hide them.
		tc := tls.Client(c.raw, p.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, err
		}
		return tc, nil
	}
	opts := append(append([]mail.Option(nil), p.base...), mail.WithDialContextFunc(dialFn))
	mc, err := mail.NewClient(p.cfg.Host, opts...)
	if err != nil {
		return nil, err
	}
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	release()
	if err != nil {
		if c.raw != nil {
			_ = c.raw.Conn.Close() // go-mail leaves it open after a failed EHLO, STARTTLS or AUTH
		}
		return nil, err
	}
	c.sc = sc
	// A buffer that holds a typical message with its commands, so that
	// one is written at once; go-mail's own (4 KiB) lies beneath it.
	sc.Text.W = bufio.NewWriterSize(flushThrough{sc.Text.W}, writeBuffer)
	// The extensions from the server's last EHLO reply, which go-mail
	// repeats after STARTTLS.
	c.pipelining, _ = sc.Extension("PIPELINING")
	c.eightBitMIME, _ = sc.Extension("8BITMIME")
	c.smtpUTF8, _ = sc.Extension("SMTPUTF8")
	chunking, _ := sc.Extension("CHUNKING")
	c.chunking = chunking && c.pipelining && !p.noChunking
	return c, nil
}

// writeBuffer is the size of a connection's write buffer.
const writeBuffer = 64 << 10

// flushThrough passes every write on to w at once. On a failure it counts
// only the bytes that left w: w's buffer is empty on entry, so what it
// still holds did not reach the connection.
type flushThrough struct{ w *bufio.Writer }

func (f flushThrough) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = f.w.Flush()
	}
	if err != nil {
		n = max(0, n-f.w.Buffered())
	}
	return n, err
}

// conn is one pooled SMTP session: go-mail's client on the tracked
// connection, and the extensions the server offered on it.
type conn struct {
	sc      *smtp.Client
	raw     *trackedConn
	timeout time.Duration

	pipelining   bool // RFC 2920
	chunking     bool // RFC 3030 CHUNKING, with PIPELINING: a message goes as BDAT LAST with its commands
	eightBitMIME bool // RFC 6152: MAIL FROM says BODY=8BITMIME, as go-mail does
	smtpUTF8     bool // RFC 6531: MAIL FROM says SMTPUTF8 when an address needs it

	outOfStep bool         // the server's replies no longer follow the commands: carry nothing more
	batch     bytes.Buffer // where sendChunks assembles a batch, kept between batches
}

// discard drops the connection without a word: it is broken or in doubt.
func (c *conn) discard() { _ = c.raw.Conn.Close() }

// quit ends the session politely, but never waits long for it.
func (c *conn) quit() {
	_ = c.raw.SetDeadline(time.Now().Add(min(c.timeout, 2*time.Second)))
	_ = c.sc.Quit()
	_ = c.raw.Conn.Close()
}

// trackedConn remembers the first I/O error since bind, so a failure
// go-mail reports without a cause can still be told apart (timeout, reset),
// and keeps every deadline within the bound context's.
type trackedConn struct {
	net.Conn
	mu      sync.Mutex
	limit   time.Time // the bound context's deadline, zero if none
	aborted bool      // the bound context ended: deadlines stay in the past
	err     error
}

// past is a deadline that has always passed.
func past() time.Time { return time.Unix(1, 0) }

func (t *trackedConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if err != nil {
		t.note(err)
	}
	return n, err
}

func (t *trackedConn) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	if err != nil {
		t.note(err)
	}
	return n, err
}

func (t *trackedConn) note(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

func (t *trackedConn) SetDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Conn.SetDeadline(t.clamp(d))
}

func (t *trackedConn) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Conn.SetReadDeadline(t.clamp(d))
}

func (t *trackedConn) SetWriteDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Conn.SetWriteDeadline(t.clamp(d))
}

func (t *trackedConn) clamp(d time.Time) time.Time {
	if t.aborted {
		return past()
	}
	if !t.limit.IsZero() && (d.IsZero() || t.limit.Before(d)) {
		return t.limit
	}
	return d
}

// bind ties the connection to ctx until release is called: deadlines never
// pass ctx's, and its cancellation interrupts any read or write at once.
func (t *trackedConn) bind(ctx context.Context) (release func()) {
	t.mu.Lock()
	t.err, t.aborted = nil, false
	t.limit, _ = ctx.Deadline()
	t.mu.Unlock()
	stop := func() bool { return false }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			t.mu.Lock()
			t.aborted = true
			_ = t.Conn.SetDeadline(past())
			t.mu.Unlock()
		})
	}
	return func() {
		stopped := stop()
		t.mu.Lock()
		t.limit = time.Time{}
		if ctx.Done() != nil && !stopped {
			// ctx ended and the abort may still be on its way: treat the
			// connection as aborted now rather than race with it.
			t.aborted = true
		}
		t.mu.Unlock()
	}
}

func (t *trackedConn) ioErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// failed reports whether the connection saw an I/O error or was aborted.
func (t *trackedConn) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err != nil || t.aborted
}

// hungUp reports whether err is the other side closing the connection.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
