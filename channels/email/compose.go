package email

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/crier-dev/crier/channels"
)

// The content cache's bounds: a broadcast sends one content to many
// recipients in a row, so a few entries suffice, and an entry is composed
// afresh after a minute so that a retry much later does not reuse it.
const (
	maxContents   = 8
	maxContentAge = time.Minute
)

// The header fields whose values differ between recipients of one content.
// Every other header field, and the whole body, is shared.
const (
	fieldDate = iota + 1
	fieldInReplyTo
	fieldMessageID
	fieldReferences
	fieldDelivery
	fieldTo
)

// recipientFields names the per-recipient header fields as go-mail
// writes them.
var recipientFields = map[string]int{
	string(mail.HeaderDate):       fieldDate,
	string(mail.HeaderInReplyTo):  fieldInReplyTo,
	string(mail.HeaderMessageID):  fieldMessageID,
	string(mail.HeaderReferences): fieldReferences,
	headerDelivery:                fieldDelivery,
	string(mail.HeaderTo):         fieldTo,
}

// headerDelivery carries the delivery key, so a message can be traced
// back to its row in the delivery log.
const headerDelivery = "X-Crier-Delivery"

// outgoing is one message ready for the SMTP transaction: its envelope
// and either a shared content with this recipient's header values, or the
// whole message composed for this recipient alone.
type outgoing struct {
	from, rcpt string // envelope addresses as MAIL FROM and RCPT TO carry them ("<a@b>")
	utf8       bool   // an envelope address is not ASCII: MAIL FROM asks for SMTPUTF8

	shared *content
	fields [fieldTo + 1]string // values for shared's per-recipient fields; "" omits the field

	whole []byte // the message, when composed for this recipient only
}

// writeTo writes the message as go-mail composed it, not dot-stuffed, to
// w.
func (o *outgoing) writeTo(w io.Writer) error {
	if o.shared == nil {
		_, err := w.Write(o.whole)
		return err
	}
	if _, err := w.Write(o.header()); err != nil {
		return err
	}
	_, err := w.Write(o.shared.body)
	return err
}

// chunk is the message as BDAT carries it, in two parts: what a server
// stores when the message is sent with DATA, so with the line endings
// DATA gives it (see crlf), and neither dot-stuffed nor ended by ".".
// head is nil for a message composed whole. The header section needs no
// change: go-mail writes it with CRLF, and a recipient's values are plain
// ASCII.
func (o *outgoing) chunk() (head, rest []byte) {
	if o.shared == nil {
		return nil, crlf(o.whole)
	}
	return o.header(), o.shared.chunk
}

// size is about the bytes o's chunk takes, without building its header.
func (o *outgoing) size() int {
	if o.shared == nil {
		return len(o.whole)
	}
	return len(o.shared.chunk) + 1024
}

// writeData writes a shared content's message as DATA carries it:
// dot-stuffed and ended by ".". The header section needs no stuffing: its
// lines begin with a field name or a space, and its values are plain
// ASCII, so only the body's stuffing (done once per content) counts.
func (o *outgoing) writeData(w io.Writer) error {
	if _, err := w.Write(o.header()); err != nil {
		return err
	}
	_, err := w.Write(o.shared.stuffed())
	return err
}

// header is a shared content's header section with this recipient's
// fields in their places.
func (o *outgoing) header() []byte {
	head := make([]byte, 0, o.shared.headLen+256)
	for _, p := range o.shared.head {
		if p.field == 0 {
			head = append(head, p.literal...)
		} else if v := o.fields[p.field]; v != "" {
			head = appendHeader(head, p.name, v)
		}
	}
	return head
}

// content is one message content (subject, text, HTML, with the sender's
// From and Reply-To) as go-mail encodes it, split so that the header
// fields that differ per recipient can be written in their places.
type content struct {
	subject, text, html string
	made                time.Time

	head    []piece // the header section
	headLen int     // the bytes of head's literals
	body    []byte  // the blank line after the header section, and the body
	chunk   []byte  // body with the line endings DATA gives it (see crlf): body itself when go-mail's are

	dataOnce sync.Once
	data     []byte // body dot-stuffed by textproto's DotWriter, with the final "."; see stuffed
}

// stuffed is the body as DATA carries it: dot-stuffed by textproto's
// DotWriter and ended by ".". It is made on first use, as a server that
// offers CHUNKING never needs it. The header section ends with a line
// break, so the DotWriter would begin the body at the start of a line:
// stuffing the body alone gives the same bytes.
func (c *content) stuffed() []byte {
	c.dataOnce.Do(func() {
		var data bytes.Buffer
		data.Grow(len(c.body) + len(c.body)/64 + 8)
		bw := bufio.NewWriter(&data)
		dw := textproto.NewWriter(bw).DotWriter()
		_, _ = dw.Write(c.body) // a bytes.Buffer takes everything
		_ = dw.Close()
		c.data = data.Bytes()
	})
	return c.data
}

// piece is a literal run of the header section, or the place of one
// per-recipient field (its name as go-mail wrote it).
type piece struct {
	literal []byte
	field   int
	name    string
}

// contentCache keeps the most recently used contents of one Sender (whose
// From and Reply-To never change, so they are not part of the key).
type contentCache struct {
	now func() time.Time // the cache's own clock, for the age limit

	mu      sync.Mutex
	entries []*content // most recently used last
}

// get returns the content for subject, text and html, composing it with
// compose when no fresh entry has it.
func (cc *contentCache) get(subject, text, html string, compose func() (*content, error)) (*content, error) {
	now := cc.now()
	cc.mu.Lock()
	for i := len(cc.entries) - 1; i >= 0; i-- {
		e := cc.entries[i]
		if e.subject == subject && e.text == text && e.html == html && now.Sub(e.made) < maxContentAge {
			copy(cc.entries[i:], cc.entries[i+1:])
			cc.entries[len(cc.entries)-1] = e
			cc.mu.Unlock()
			return e, nil
		}
	}
	cc.mu.Unlock()

	c, err := compose()
	if err != nil {
		return nil, err
	}
	c.subject, c.text, c.html, c.made = subject, text, html, now

	cc.mu.Lock()
	defer cc.mu.Unlock()
	kept := cc.entries[:0]
	for _, e := range cc.entries {
		if now.Sub(e.made) < maxContentAge && !(e.subject == subject && e.text == text && e.html == html) {
			kept = append(kept, e)
		}
	}
	if len(kept) >= maxContents {
		kept = append(kept[:0], kept[len(kept)-maxContents+1:]...)
	}
	clear(cc.entries[len(kept):])
	cc.entries = append(kept, c)
	return c, nil
}

// prepare checks m and turns it into an outgoing message with its
// Message-ID. Its failures are about this message only.
func (s *Sender) prepare(m channels.Message) (*outgoing, string, error) {
	if m.Key == "" {
		return nil, "", channels.Permanent(channels.ReasonRejected, "",
			errors.New("email: message has no delivery key to derive its Message-ID from"))
	}
	to, err := netmail.ParseAddress(m.Address)
	if err != nil {
		return nil, "", channels.Permanent(channels.ReasonBadAddress, "", fmt.Errorf("email: recipient %q: %w", m.Address, err))
	}
	o := &outgoing{from: s.envelopeFrom, rcpt: (&netmail.Address{Address: to.Address}).String()}
	// RFC 5321 2.3.8: a line break in an address would end the command
	// early and start another one.
	if strings.ContainsAny(o.rcpt, "\r\n") {
		return nil, "", channels.Permanent(channels.ReasonBadAddress, "", fmt.Errorf("email: recipient %q contains a line break", m.Address))
	}
	o.utf8 = !isASCII(o.from) || !isASCII(o.rcpt)
	var ref string
	if m.Thread != "" {
		if ref, err = threadRef(m.Thread); err != nil {
			return nil, "", channels.Permanent(channels.ReasonRejected, "", err)
		}
	}
	bare := s.messageID(m.Key)
	id := "<" + bare + ">"
	toHeader := to.String()

	if !plain(m.Key) || !plain(toHeader) {
		// go-mail would encode these values: leave the whole message to it.
		msg := s.newMsg(m.Subject, m.Text, m.HTML)
		if err := msg.To(m.Address); err != nil {
			return nil, "", channels.Permanent(channels.ReasonBadAddress, "", fmt.Errorf("email: recipient: %w", err))
		}
		s.setRecipientHeaders(msg, bare, ref, m.Key, s.now())
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			return nil, "", channels.Temporary(channels.ReasonUnknown, "", 0, fmt.Errorf("email: compose: %w", err))
		}
		o.whole = buf.Bytes()
		return o, id, nil
	}

	o.shared, err = s.contents.get(m.Subject, m.Text, m.HTML, func() (*content, error) {
		return s.composeShared(m.Subject, m.Text, m.HTML)
	})
	if err != nil {
		return nil, "", channels.Temporary(channels.ReasonUnknown, "", 0, fmt.Errorf("email: compose: %w", err))
	}
	o.fields[fieldDate] = s.now().Format(time.RFC1123Z)
	o.fields[fieldMessageID] = id
	o.fields[fieldInReplyTo] = ref
	o.fields[fieldReferences] = ref
	o.fields[fieldDelivery] = m.Key
	o.fields[fieldTo] = toHeader
	return o, id, nil
}

// newMsg is a go-mail message with what every recipient of one content
// shares.
func (s *Sender) newMsg(subject, text, html string) *mail.Msg {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	if s.replyTo != nil {
		msg.SetAddrHeaderFromMailAddress(mail.HeaderReplyTo, s.replyTo)
	}
	msg.Subject(subject)
	// RFC 3834: stops out-of-office replies to an incident bulletin.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, text)
	if html != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, html)
	}
	return msg
}

// setRecipientHeaders sets the header fields that differ per recipient
// (To aside). ref is "" for the first message of a thread.
func (s *Sender) setRecipientHeaders(msg *mail.Msg, bareID, ref, key string, date time.Time) {
	msg.SetMessageIDWithValue(bareID) // adds the angle brackets
	if ref != "" {
		msg.SetGenHeader(mail.HeaderInReplyTo, ref)
		msg.SetGenHeader(mail.HeaderReferences, ref)
	}
	msg.SetDateWithValue(date)
	msg.SetGenHeader(headerDelivery, key)
}

// composeShared encodes a content with go-mail, with stand-in values for
// the per-recipient fields, and marks where those fields are.
func (s *Sender) composeShared(subject, text, html string) (*content, error) {
	msg := s.newMsg(subject, text, html)
	msg.SetAddrHeaderFromMailAddress(mail.HeaderTo, &netmail.Address{Address: "recipient@example.invalid"})
	s.setRecipientHeaders(msg, "id@example.invalid", "<thread@example.invalid>", "key", time.Unix(0, 0))
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, err
	}
	return splitContent(buf.Bytes())
}

// splitContent cuts a message into its header section, with the
// per-recipient fields taken out, and the rest.
func splitContent(raw []byte) (*content, error) {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, errors.New("composed message has no end of header")
	}
	end += 2 // the header section keeps its last line break
	c := &content{body: raw[end:]}
	c.chunk = crlf(c.body)
	found := 0
	lit := 0 // start of the current literal run
	for i := 0; i < end; {
		// One field: its first line and every continuation line.
		j := i
		for {
			n := bytes.Index(raw[j:end], []byte("\r\n"))
			j += n + 2
			if j >= end || (raw[j] != ' ' && raw[j] != '\t') {
				break
			}
		}
		name, _, _ := bytes.Cut(raw[i:j], []byte(":"))
		if f, ok := recipientFields[string(name)]; ok {
			if lit < i {
				c.head = append(c.head, piece{literal: raw[lit:i]})
				c.headLen += i - lit
			}
			c.head = append(c.head, piece{field: f, name: string(name)})
			found++
			lit = j
		}
		i = j
	}
	if lit < end {
		c.head = append(c.head, piece{literal: raw[lit:end]})
		c.headLen += end - lit
	}
	if found != len(recipientFields) {
		return nil, fmt.Errorf("composed message has %d of the %d per-recipient header fields", found, len(recipientFields))
	}
	return c, nil
}

// crlf gives a message the line endings DATA gives it: a line feed
// without its carriage return gets one, and the message ends with a line
// break. It follows textproto's DotWriter, bare carriage returns and its
// other quirks included, but does not stuff dots, so BDAT carries exactly
// what a server stores after un-stuffing the same message sent with DATA.
// go-mail writes CRLF throughout, so b comes back as it is unless it
// lacks a final line break (a single-part message does).
func crlf(b []byte) []byte {
	// A line feed after an odd run of carriage returns already ends its
	// line; after an even run (none, say) the DotWriter inserts one.
	fine := len(b) > 0 && b[len(b)-1] == '\n'
	for i := 0; fine; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if crRun(b[:i])%2 == 0 {
			fine = false
		}
		i++
	}
	if fine {
		return b
	}
	const (
		beginLine = iota
		cr
		data
	)
	out := make([]byte, 0, len(b)+len(b)/32+2)
	state := beginLine
	for _, c := range b {
		switch state {
		case beginLine, data:
			state = data
			if c == '\r' {
				state = cr
			}
			if c == '\n' {
				out = append(out, '\r')
				state = beginLine
			}
		case cr:
			state = data
			if c == '\n' {
				state = beginLine
			}
		}
		out = append(out, c)
	}
	switch state {
	case data:
		out = append(out, '\r', '\n')
	case cr:
		out = append(out, '\n')
	case beginLine:
		if len(b) == 0 {
			out = append(out, '\r', '\n')
		}
	}
	return out
}

// crRun is the number of carriage returns that end b.
func crRun(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\r' {
		n++
	}
	return n
}

// appendHeader appends one header field as go-mail's message writer
// folds it: words are moved to a continuation line when the line would
// pass 76 characters. value is plain ASCII without line breaks.
func appendHeader(b []byte, name, value string) []byte {
	start := len(b)
	room := mail.MaxHeaderLength - 2 - len(name) - 2
	b = append(b, name...)
	b = append(b, ": "...)
	folded := false
	for {
		word, rest, more := strings.Cut(value, " ")
		if room-len(word) <= 1 {
			b = append(b, "\r\n "...)
			room = mail.MaxHeaderLength - 3
			folded = true
		}
		b = append(b, word...)
		room -= len(word)
		if !more {
			break
		}
		b = append(b, ' ')
		room--
		value = rest
	}
	if folded {
		// go-mail drops the space before each line break it added.
		line := strings.ReplaceAll(string(b[start:]), " \r\n", "\r\n")
		b = append(b[:start], line...)
	}
	return append(b, "\r\n"...)
}

// plain reports whether go-mail would write s into a header as it is:
// printable ASCII only (no line breaks, nothing to encode).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
