package channeltest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPStage names the point of an SMTP transaction a hook answers.
type SMTPStage string

// The stages an SMTPHook is asked about.
const (
	SMTPStageMail SMTPStage = "MAIL" // addr is the envelope sender
	SMTPStageRcpt SMTPStage = "RCPT" // addr is the recipient
	SMTPStageData SMTPStage = "DATA" // asked once per accepted recipient, before the data is stored
	// SMTPStageStored is asked once per recipient after the message was
	// stored (and counted), before the final reply: ErrSMTPDrop there
	// loses the reply, so the client cannot tell that the message arrived.
	SMTPStageStored SMTPStage = "STORED"
)

// ErrSMTPDrop, returned by a hook, makes the peer close the connection
// without answering: at DATA it first reads part of the message, so the
// client sees the connection vanish mid-transfer.
var ErrSMTPDrop = errors.New("channeltest: drop the connection")

// SMTPReply builds the answer a hook returns to refuse a command, for
// example SMTPReply(550, "5.1.1", "no such user"). An empty enhanced code
// lets the server send the generic X.0.0. A 421 reply also closes the
// connection, as real servers do.
func SMTPReply(code int, enhanced, message string) error {
	ec := smtp.EnhancedCodeNotSet
	if parts := strings.Split(enhanced, "."); len(parts) == 3 {
		for i, p := range parts {
			ec[i], _ = strconv.Atoi(p)
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: message}
}

// SMTPMessage is one message the peer accepted, as it arrived.
type SMTPMessage struct {
	From   string      // envelope sender (MAIL FROM)
	To     []string    // envelope recipients (RCPT TO)
	Data   []byte      // the raw message after DATA, dot-unstuffed
	Header mail.Header // Data's header, parsed by net/mail (nil if it did not parse)
	Auth   string      // the username that authenticated on the connection, "" without AUTH
	TLS    bool        // whether the connection was encrypted when the message arrived
	Helo   string      // the name the client gave in EHLO/HELO
	Conn   int         // which connection carried it, counting from 1 in accept order
}

// SMTPOption configures an SMTPPeer.
type SMTPOption func(*smtpOptions)

type smtpOptions struct {
	startTLS, implicitTLS bool
	user, pass            string
	hook                  func(SMTPStage, string) error
	latency               time.Duration
	dropAfter             int
	idleTimeout           time.Duration
	discard               bool
}

// SMTPStartTLS makes the peer offer STARTTLS with a freshly generated
// self-signed certificate for 127.0.0.1; clients trust it through
// SMTPPeer.RootCAs or ClientTLSConfig.
func SMTPStartTLS() SMTPOption { return func(o *smtpOptions) { o.startTLS = true } }

// SMTPImplicitTLS makes the peer speak TLS from the first byte (port 465
// style) with a generated certificate, as SMTPStartTLS.
func SMTPImplicitTLS() SMTPOption { return func(o *smtpOptions) { o.implicitTLS = true } }

// SMTPAuth makes the peer offer AUTH PLAIN and LOGIN and require it before
// MAIL (530 5.7.0); a wrong username or password gets 535 5.7.8.
func SMTPAuth(username, password string) SMTPOption {
	return func(o *smtpOptions) { o.user, o.pass = username, password }
}

// SMTPHook lets a test answer MAIL, RCPT and DATA itself: return nil to
// accept, an SMTPReply to refuse, or ErrSMTPDrop to hang up (see the
// stages for when each is asked).
func SMTPHook(hook func(stage SMTPStage, addr string) error) SMTPOption {
	return func(o *smtpOptions) { o.hook = hook }
}

// SMTPLatency delays every answer to MAIL, RCPT and DATA by d, to slow a
// server down or, with d past the client's timeout, to make it hang.
func SMTPLatency(d time.Duration) SMTPOption { return func(o *smtpOptions) { o.latency = d } }

// SMTPDropAfter makes the peer close each connection right after it has
// answered the connection's n-th accepted message.
func SMTPDropAfter(n int) SMTPOption { return func(o *smtpOptions) { o.dropAfter = n } }

// SMTPIdleTimeout makes the peer answer "421 4.4.2 Idle timeout" and close
// a connection on which the client has said nothing for d.
func SMTPIdleTimeout(d time.Duration) SMTPOption { return func(o *smtpOptions) { o.idleTimeout = d } }

// SMTPDiscard makes the peer count messages without keeping them, so a
// benchmark can push many thousands through it; Messages stays empty.
func SMTPDiscard() SMTPOption { return func(o *smtpOptions) { o.discard = true } }

// SMTPPeer is a real SMTP server (emersion/go-smtp) listening on
// 127.0.0.1, recording what it receives. It is closed at test cleanup.
type SMTPPeer struct {
	// Host is always "127.0.0.1".
	Host string
	// Port is the port the peer listens on.
	Port int
	// Username and Password are what SMTPAuth set ("" without auth).
	Username, Password string
	// RootCAs holds the peer's self-signed certificate (nil without TLS).
	RootCAs *x509.CertPool

	opt   smtpOptions
	srv   *smtp.Server
	done  chan struct{}
	count atomic.Int64
	conns atomic.Int64

	mu       sync.Mutex
	msgs     []SMTPMessage
	live     map[*peerConn]struct{}
	closed   int
	closedCh chan struct{} // closed and replaced whenever a connection closes
}

// NewSMTPPeer starts a peer on 127.0.0.1 on a free port.
func NewSMTPPeer(tb testing.TB, opts ...SMTPOption) *SMTPPeer {
	tb.Helper()
	p := &SMTPPeer{Host: "127.0.0.1", done: make(chan struct{}),
		live: make(map[*peerConn]struct{}), closedCh: make(chan struct{})}
	for _, o := range opts {
		o(&p.opt)
	}
	p.Username, p.Password = p.opt.user, p.opt.pass

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("channeltest: smtp listen: %v", err)
	}
	p.Port = ln.Addr().(*net.TCPAddr).Port
	var l net.Listener = &peerListener{Listener: ln, p: p}

	srv := smtp.NewServer(smtp.BackendFunc(p.newSession))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // AUTH over plain TCP is fine on loopback
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = p.opt.idleTimeout
	if p.opt.startTLS || p.opt.implicitTLS {
		cert, pool, err := selfSigned()
		if err != nil {
			tb.Fatalf("channeltest: smtp certificate: %v", err)
		}
		p.RootCAs = pool
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if p.opt.implicitTLS {
			l = tls.NewListener(l, cfg)
		} else {
			srv.TLSConfig = cfg
		}
	}
	p.srv = srv
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() {
		close(p.done) // wake sessions sleeping in SMTPLatency
		// Stop accepting, hang up on every client and wait for the
		// sessions to end by themselves: go-smtp's Close would reset a
		// session from another goroutine while it reads a BDAT chunk (a
		// data race in go-smtp v0.25.1).
		_ = ln.Close()
		p.DropConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			_ = srv.Close()
		}
	})
	return p
}

// ClientTLSConfig is a client configuration that trusts the peer's
// certificate (nil without TLS).
func (p *SMTPPeer) ClientTLSConfig() *tls.Config {
	if p.RootCAs == nil {
		return nil
	}
	return &tls.Config{RootCAs: p.RootCAs, ServerName: p.Host, MinVersion: tls.VersionTLS12}
}

// Messages returns a copy of every message accepted so far, in order.
func (p *SMTPPeer) Messages() []SMTPMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SMTPMessage(nil), p.msgs...)
}

// Count is the number of messages accepted so far (also in discard mode).
func (p *SMTPPeer) Count() int { return int(p.count.Load()) }

// Connections is the number of TCP connections accepted so far.
func (p *SMTPPeer) Connections() int { return int(p.conns.Load()) }

// DropConnections closes every open connection at once, without a word,
// as a NAT box or a restarting server would.
func (p *SMTPPeer) DropConnections() {
	p.mu.Lock()
	open := make([]*peerConn, 0, len(p.live))
	for c := range p.live {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// WaitClosed blocks until at least n connections have been closed (by
// either side), so a test can wait for an idle timeout without sleeping.
// It fails the test after a generous guard of 10 seconds.
func (p *SMTPPeer) WaitClosed(tb testing.TB, n int) {
	tb.Helper()
	guard := time.NewTimer(10 * time.Second)
	defer guard.Stop()
	for {
		p.mu.Lock()
		closed, ch := p.closed, p.closedCh
		p.mu.Unlock()
		if closed >= n {
			return
		}
		select {
		case <-ch:
		case <-guard.C:
			tb.Fatalf("channeltest: %d of %d connections closed", closed, n)
		}
	}
}

// peerListener numbers and tracks the connections it accepts.
type peerListener struct {
	net.Listener
	p *SMTPPeer
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pc := &peerConn{Conn: c, p: l.p, id: int(l.p.conns.Add(1))}
	l.p.mu.Lock()
	l.p.live[pc] = struct{}{}
	l.p.mu.Unlock()
	return pc, nil
}

// peerConn can hang up right after the server's next answer, which is how
// a 421 reply or SMTPDropAfter closes a connection once the reply is out.
type peerConn struct {
	net.Conn
	p               *SMTPPeer
	id              int
	closeAfterWrite atomic.Bool
	once            sync.Once
}

func (c *peerConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.closeAfterWrite.Load() {
		_ = c.Close()
	}
	return n, err
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.live, c)
		c.p.closed++
		close(c.p.closedCh)
		c.p.closedCh = make(chan struct{})
		c.p.mu.Unlock()
	})
	return err
}

// smtpSession is one client's session; go-smtp starts a new one after
// STARTTLS, so TLS is read from the connection each time.
type smtpSession struct {
	p    *SMTPPeer
	conn *peerConn
	tls  bool
	helo string
	auth string
	from string
	to   []string
	sent int
}

func (p *SMTPPeer) newSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	_, isTLS := c.TLSConnectionState()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	pc, ok := nc.(*peerConn)
	if !ok {
		return nil, errors.New("channeltest: unexpected connection type")
	}
	return &smtpSession{p: p, conn: pc, tls: isTLS, helo: c.Hostname()}, nil
}

// AuthMechanisms offers PLAIN and LOGIN when SMTPAuth is set, nothing otherwise.
func (s *smtpSession) AuthMechanisms() []string {
	if s.p.opt.user == "" {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth checks the credentials given to SMTPAuth.
func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != s.p.opt.user || pass != s.p.opt.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.auth = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if err := s.wait(); err != nil {
		return err
	}
	if s.p.opt.user != "" && s.auth == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	if err := s.ask(SMTPStageMail, from); err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.wait(); err != nil {
		return err
	}
	if err := s.ask(SMTPStageRcpt, to); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	if err := s.wait(); err != nil {
		return err
	}
	for _, to := range s.to {
		if err := s.ask(SMTPStageData, to); err != nil {
			if errors.Is(err, ErrSMTPDrop) {
				_, _ = r.Read(make([]byte, 64)) // the client is mid-transfer when the line goes
				_ = s.conn.Close()
			}
			return err
		}
	}
	if s.p.opt.discard {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	} else {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		m := SMTPMessage{From: s.from, To: append([]string(nil), s.to...), Data: data,
			Auth: s.auth, TLS: s.tls, Helo: s.helo, Conn: s.conn.id}
		if parsed, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
			m.Header = parsed.Header
		}
		s.p.mu.Lock()
		s.p.msgs = append(s.p.msgs, m)
		s.p.mu.Unlock()
	}
	s.p.count.Add(1)
	s.sent++
	for _, to := range s.to {
		if err := s.ask(SMTPStageStored, to); err != nil {
			return err // ask has closed the connection for ErrSMTPDrop
		}
	}
	if s.p.opt.dropAfter > 0 && s.sent >= s.p.opt.dropAfter {
		s.conn.closeAfterWrite.Store(true)
	}
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// ask runs the test's hook; a 421 answer closes the connection after the reply.
func (s *smtpSession) ask(stage SMTPStage, addr string) error {
	if s.p.opt.hook == nil {
		return nil
	}
	err := s.p.opt.hook(stage, addr)
	if errors.Is(err, ErrSMTPDrop) && stage != SMTPStageData {
		_ = s.conn.Close()
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code == 421 {
		s.conn.closeAfterWrite.Store(true)
	}
	return err
}

// wait applies SMTPLatency, giving up when the peer shuts down.
func (s *smtpSession) wait() error {
	if s.p.opt.latency <= 0 {
		return nil
	}
	t := time.NewTimer(s.p.opt.latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.p.done:
		return errors.New("channeltest: peer closed")
	}
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0: // AUTH LOGIN, with or without the username as initial response
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}

// selfSigned makes a throw-away certificate for 127.0.0.1 and localhost.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "channeltest smtp peer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
