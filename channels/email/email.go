// Package email is crier's SMTP channel, built on github.com/wneessen/go-mail.
// It sends one message per recipient over a small pool of long-lived
// connections, gives every message a Message-ID derived from its delivery
// key and the installation (so a resend is recognisable, updates thread in
// mail clients, and another database never repeats an ID), and classifies
// every failure by its SMTP reply code.
//
// How a message is sent:
//
//   - Connections are opened by go-mail (dial, EHLO, STARTTLS or implicit
//     TLS, AUTH), which hands over its SMTP client; the channel runs the
//     transactions itself on it, writing through a 64 KiB buffer so that a
//     message and the commands around it usually leave in one write.
//   - When the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO and
//     DATA go out in one write and their three replies are read in order;
//     after the 354 the message follows, ended by ".". That is two round
//     trips per message, with no NOOP before it and no RSET after a
//     success. Without PIPELINING the commands go one at a time through
//     go-mail's client. After a refused transaction the connection gets an
//     RSET before the next message; after a broken one it is closed.
//   - When the server offers CHUNKING (RFC 3030) as well as PIPELINING,
//     which go-smtp, Postfix, Exchange and Gmail do, a message goes out
//     in one write instead: MAIL FROM, RCPT TO, "BDAT <size> LAST" and
//     the message itself, with CRLF line endings but neither dot-stuffed
//     nor ended by ".", so the server copies it in bulk rather than
//     un-stuffing it line by line. The three replies are read in order:
//     one round trip per message. The size is exact: the message is what
//     the server would store of it sent with DATA. A server refusing MAIL
//     FROM or RCPT TO also refuses the BDAT and drops its chunk, so the
//     connection stays in step and gets an RSET, as after any refusal. A
//     server without CHUNKING gets DATA, and one without PIPELINING gets
//     the commands one at a time, CHUNKING or not.
//   - SendBatch sends several messages on one connection. With PIPELINING
//     each message's data and "." share a write with the next message's
//     MAIL FROM, RCPT TO and DATA, so a message costs one round trip; a
//     refused transaction is ended by an RSET written ahead of the next
//     group. With CHUNKING too, the batch's messages are written at once
//     (each after the first behind an RSET) before any reply is read: one
//     round trip a batch. Messages the server never took anything of when
//     a connection was lost go on a fresh one within the same call.
//   - A broadcast gives many recipients the same subject, text and HTML.
//     go-mail composes such a content once (MIME structure, encoded
//     Subject, quoted-printable parts, boundaries); a few recent contents
//     are kept for up to a minute, and each recipient's message is that
//     content with its own To, Date, Message-ID, X-Crier-Delivery and, when
//     threaded, In-Reply-To and References written in their places,
//     exactly as go-mail would have written them. The content's body is
//     kept as BDAT carries it and, made the first time DATA needs it,
//     dot-stuffed. When one of those values
//     is not plain printable ASCII (a non-ASCII address, say), go-mail
//     composes the whole message for that recipient.
//   - A failure is classified by the stage it happened at (MAIL, RCPT,
//     DATA, sending the message, waiting for the final reply) and the
//     reply code; a refused BDAT is read as a refused final reply. A
//     connection lost (or timed out) after the final "." was written,
//     before its reply, may have delivered the message, and so may one
//     lost after a whole BDAT chunk was written and MAIL FROM and RCPT TO
//     were accepted, before the reply to BDAT: that failure is marked
//     channels.Error.MaybeSent, so a channel whose in_doubt policy is hold
//     does not send it again. A connection lost while the chunk was being
//     written is not in doubt (a server takes no part of a chunk), and such
//     a message may go again on a fresh connection; so may one sent alone
//     whose MAIL FROM or RCPT TO went unanswered. In a batch, once the
//     server has begun answering, a connection lost before a message's
//     BDAT reply leaves it, and every message written after it, in doubt.
package email

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	netmail "net/mail"
	"os"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
)

// ErrClosed is returned (as a temporary failure) by Send after Close.
var ErrClosed = errors.New("email: sender is closed")

// Option adjusts a Sender: its installation (required), and test seams.
type Option func(*options)

type options struct {
	tls          *tls.Config
	now          func() time.Time
	installation string
}

// WithInstallation sets the identity of the installation the Sender sends
// for: the database's installation id, random and made with the database.
// Message-IDs are derived from it and the delivery key, so that a new
// database (a rebuilt server, a drill, a staging copy) sending from the
// same domain never repeats the Message-ID of earlier, different mail,
// while a resend of one delivery keeps its ID. New refuses to build a
// Sender without it.
func WithInstallation(id string) Option { return func(o *options) { o.installation = id } }

// WithTLSConfig sets the TLS configuration used for STARTTLS and implicit
// TLS, typically to trust a test server's certificate through RootCAs.
// ServerName defaults to the configured host.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithNow replaces the clock that stamps the Date header.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Sender delivers email through one SMTP server. It is safe for concurrent
// use; each pooled connection carries one message or one batch at a time.
type Sender struct {
	name    string
	cfg     Config
	from    *netmail.Address
	replyTo *netmail.Address
	now     func() time.Time
	secrets []string // forms of the password that must never reach an error
	pool    *pool

	envelopeFrom string // MAIL FROM's address, "<a@b>"
	installation []byte // keys the Message-ID hash (see WithInstallation)
	contents     contentCache
}

var _ channels.Channel = (*Sender)(nil)

// New checks c (after applying its defaults) and returns a Sender. It does
// not connect: connections are opened on first use.
func New(name string, c Config, opts ...Option) (*Sender, error) {
	c.Defaults()
	if l := c.Validate(); len(l) > 0 {
		return nil, fmt.Errorf("email channel %q: %w", name, l.Err())
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if !c.Password.IsSet() && c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("email channel %q: password_file: %w", name, err)
		}
		c.Password = fields.Secret(strings.TrimRight(string(b), "\r\n"))
		if !c.Password.IsSet() {
			return nil, fmt.Errorf("email channel %q: password_file %q is empty", name, c.PasswordFile)
		}
	}
	if o.installation == "" {
		// Without it every database would give a delivery key the same
		// Message-ID, and receivers that deduplicate would drop real mail.
		return nil, fmt.Errorf("email channel %q: no installation id to derive Message-IDs from (email.WithInstallation)", name)
	}
	s := &Sender{name: name, cfg: c, now: o.now, installation: []byte(o.installation), contents: contentCache{now: time.Now}}
	s.from, _ = netmail.ParseAddress(c.From) // Validate checked both
	if c.ReplyTo != "" {
		s.replyTo, _ = netmail.ParseAddress(c.ReplyTo)
	}
	s.envelopeFrom = (&netmail.Address{Address: s.from.Address}).String()
	if strings.ContainsAny(s.envelopeFrom, "\r\n") {
		return nil, fmt.Errorf("email channel %q: from: the address contains a line break", name)
	}
	if pw := c.Password.Reveal(); pw != "" {
		s.secrets = []string{pw,
			base64.StdEncoding.EncodeToString([]byte(pw)),
			base64.StdEncoding.EncodeToString([]byte("\x00" + c.Username + "\x00" + pw))}
	}
	tc := &tls.Config{}
	if o.tls != nil {
		tc = o.tls.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = c.Host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	tc.InsecureSkipVerify = tc.InsecureSkipVerify || c.InsecureSkipVerify
	s.pool = newPool(c, tc)
	return s, nil
}

// Name is the channel instance name.
func (s *Sender) Name() string { return s.name }

// Kind is channels.KindEmail.
func (s *Sender) Kind() channels.Kind { return channels.KindEmail }

// Close closes the pooled connections (politely, with QUIT). A Send still
// in flight finishes and then closes its connection.
func (s *Sender) Close() error {
	s.pool.close()
	return nil
}

// Send delivers m to m.Address once. A pooled connection that the server
// dropped while idle is redialled and the message resent on the fresh one
// before anything is reported, because nothing reached the server.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	o, id, err := s.prepare(m)
	if err != nil {
		return channels.Receipt{}, err
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return channels.Receipt{}, s.classifyDial(ctx, err)
	}
	fresh := c == nil
	if fresh {
		if c, err = s.pool.dial(ctx); err != nil {
			s.pool.release(nil)
			return channels.Receipt{}, s.classifyDial(ctx, err)
		}
	}
	reply, err := c.send(ctx, o)
	if err != nil && !fresh && ended(ctx) == nil && c.stale(err) {
		c.discard()
		if c, err = s.pool.dial(ctx); err != nil {
			s.pool.release(nil)
			return channels.Receipt{}, s.classifyDial(ctx, err)
		}
		reply, err = c.send(ctx, o)
	}
	if c.keep(err) {
		s.pool.release(c)
	} else {
		c.discard()
		s.pool.release(nil)
	}
	if err != nil {
		return channels.Receipt{}, s.classifySend(ctx, err, c)
	}
	return receipt(&m, id, reply), nil
}

// messageID is 32 hex digits of HMAC-SHA-256(installation, key) + "@" +
// domain (the Message-ID without its angle brackets). The same delivery
// key gives the same ID within an installation, so a resend after an
// ambiguous failure can be recognised by the receiving side; the same key
// in another database (whose keys restart from the same trigger and
// subscriber names) gives another ID, as RFC 5322 3.6.4 requires of a
// different message.
func (s *Sender) messageID(key string) string {
	h := hmac.New(sha256.New, s.installation)
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16]) + "@" + s.cfg.MessageIDDomain
}

// threadRef turns a Receipt.Thread into an In-Reply-To/References value,
// refusing anything that could break out of the header line.
func threadRef(t string) (string, error) {
	if len(t) > 900 || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return "", fmt.Errorf("email: thread reference %q is not a Message-ID", t)
	}
	if !strings.HasPrefix(t, "<") {
		t = "<" + t + ">"
	}
	return t, nil
}

// scrub removes every form of the password from an error's text. Go-mail
// never puts it there, but a server may echo what it was sent.
func (s *Sender) scrub(err error) error {
	if err == nil || len(s.secrets) == 0 {
		return err
	}
	msg := err.Error()
	leaked := false
	for _, sec := range s.secrets {
		if strings.Contains(msg, sec) {
			msg, leaked = strings.ReplaceAll(msg, sec, fields.Redacted), true
		}
	}
	if !leaked {
		return err
	}
	return errors.New(msg) // no Unwrap: the original text must not be reachable
}
