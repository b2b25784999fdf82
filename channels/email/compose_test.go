package email

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// composeWhole is how every message used to be composed: go-mail builds
// the whole message for its one recipient.
func composeWhole(t *testing.T, s *Sender, m channels.Message) []byte {
	t.Helper()
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	if s.replyTo != nil {
		msg.SetAddrHeaderFromMailAddress(mail.HeaderReplyTo, s.replyTo)
	}
	if err := msg.To(m.Address); err != nil {
		t.Fatal(err)
	}
	msg.SetMessageIDWithValue(s.messageID(m.Key))
	if m.Thread != "" {
		ref, err := threadRef(m.Thread)
		if err != nil {
			t.Fatal(err)
		}
		msg.SetGenHeader(mail.HeaderInReplyTo, ref)
		msg.SetGenHeader(mail.HeaderReferences, ref)
	}
	msg.SetDateWithValue(s.now())
	msg.Subject(m.Subject)
	msg.SetGenHeader("X-Crier-Delivery", m.Key)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var boundaryRE = regexp.MustCompile(`boundary=([0-9a-f]+)`)

// sameBoundary replaces a message's random multipart boundary.
func sameBoundary(b []byte) string {
	s := string(b)
	if m := boundaryRE.FindStringSubmatch(s); m != nil {
		s = strings.ReplaceAll(s, m[1], "BOUNDARY")
	}
	return s
}

func wireBytes(t *testing.T, o *outgoing) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := o.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A message built from a shared content has exactly the bytes go-mail
// gives when it composes the whole message (the multipart boundary aside),
// and the non-ASCII cases are left to go-mail altogether.
func TestPrepare_SameBytesAsGoMail(t *testing.T) {
	longKey := strings.Repeat("incident-42/update-3/", 6) + "sub-9/email"
	tests := []struct {
		name   string
		cfg    func(*Config)
		mod    func(*channels.Message)
		shared bool
	}{
		{name: "text and html", shared: true},
		{name: "text only", mod: func(m *channels.Message) { m.HTML = "" }, shared: true},
		{name: "threaded", mod: func(m *channels.Message) { m.Thread = "<0123456789abcdef@example.org>" }, shared: true},
		{name: "thread without brackets", mod: func(m *channels.Message) { m.Thread = "abc@example.org" }, shared: true},
		{name: "welsh subject and text", mod: func(m *channels.Message) {
			m.Subject = "Diweddariad: gwasanaethau presgripsiwn brys i lawr ledled Cymru — ŵyl ŷd"
			m.Text = "Defnyddiwch bresgripsiynau papur.\nŵ ŷ â ê î ô û"
		}, shared: true},
		{name: "lines starting with dots", mod: func(m *channels.Message) {
			m.Text = ".\n.hidden\n..two\nend."
			m.HTML = ""
		}, shared: true},
		{name: "long key", mod: func(m *channels.Message) { m.Key = longKey }, shared: true},
		{name: "long key with spaces", mod: func(m *channels.Message) { m.Key = strings.ReplaceAll(longKey, "/", " / ") }, shared: true},
		{name: "long message id domain", cfg: func(c *Config) {
			c.MessageIDDomain = strings.Repeat("sub.", 12) + "example.org"
		}, shared: true},
		{name: "no reply-to", cfg: func(c *Config) { c.ReplyTo = "" }, shared: true},
		{name: "recipient with a name", mod: func(m *channels.Message) { m.Address = `Eleri Morgan <eleri@example.org>` }, shared: true},
		{name: "recipient with a welsh name", mod: func(m *channels.Message) { m.Address = `Siân Ŵyn <sian@example.org>` }, shared: true},
		{name: "quoted local part", mod: func(m *channels.Message) { m.Address = `"eleri morgan"@example.org` }, shared: true},
		{name: "non-ascii address", mod: func(m *channels.Message) { m.Address = "siân@example.org" }, shared: false},
		{name: "non-ascii key", mod: func(m *channels.Message) { m.Key = "brief/ŵyl/sub-1" }, shared: false},
		{name: "key with a tab", mod: func(m *channels.Message) { m.Key = "brief\tsub-1" }, shared: false},
	}
	p := channeltest.NewSMTPPeer(t)
	now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.cfg != nil {
				mods = append(mods, tt.cfg)
			}
			s := newSender(t, peerConfig(p, mods...), WithNow(func() time.Time { return now }))
			m := message("brief/2025-03-04T08:00/sub-17/email")
			if tt.mod != nil {
				tt.mod(&m)
			}
			want := sameBoundary(composeWhole(t, s, m))
			for i := range 2 { // composed, then from the cache
				o, _, err := s.prepare(m)
				if err != nil {
					t.Fatal(err)
				}
				if (o.shared != nil) != tt.shared {
					t.Fatalf("shared content used: %v, want %v", o.shared != nil, tt.shared)
				}
				if got := sameBoundary(wireBytes(t, o)); got != want {
					t.Fatalf("message %d differs from go-mail's:\n--- got\n%s\n--- want\n%s", i, got, want)
				}
			}
		})
	}
}

// Per-recipient header fields fold exactly as go-mail folds them, for
// every length around the line limit.
func TestPrepare_FoldsLikeGoMail(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	for n := 1; n < 200; n++ {
		for _, key := range []string{strings.Repeat("k", n), strings.Repeat("key ", n/4+1)[:n], strings.Repeat("a  b", n/4+1)[:n]} {
			m := message(key)
			want := sameBoundary(composeWhole(t, s, m))
			o, _, err := s.prepare(m)
			if err != nil {
				t.Fatal(err)
			}
			if o.shared == nil {
				t.Fatalf("key %q: shared content not used", key)
			}
			// The Date differs by the clock; compare everything else.
			got := sameBoundary(wireBytes(t, o))
			if dropDate(got) != dropDate(want) {
				t.Fatalf("key %q: header differs from go-mail's:\n--- got\n%s\n--- want\n%s", key, header(got), header(want))
			}
		}
	}
}

func dropDate(msg string) string {
	return regexp.MustCompile(`(?m)^Date: .*\r\n`).ReplaceAllString(msg, "")
}

func header(msg string) string {
	h, _, _ := strings.Cut(msg, "\r\n\r\n")
	return h
}

// The stuffed form kept with a content is what textproto's DotWriter
// makes of the whole message.
func TestPrepare_DataIsDotStuffed(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	for _, text := range []string{"plain", ".\n.hidden\n..two\n.", "ends with a line break\n", "."} {
		for _, html := range []string{"", "<p>\n.x</p>"} {
			m := message("k")
			m.Text, m.HTML = text, html
			o, _, err := s.prepare(m)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			bw := bufio.NewWriter(&want)
			dw := textproto.NewWriter(bw).DotWriter()
			if err := o.writeTo(dw); err != nil {
				t.Fatal(err)
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := o.writeData(&got); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("text %q html %q: stuffed\n%q\nwant\n%q", text, html, got.String(), want.String())
			}
		}
	}
}

// Lines that begin with a dot arrive as written, whether the message was
// composed or came from the cache.
func TestSender_Send_DotLines(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	m := message("k1")
	m.Text = ".\n.hidden\n..two\nend."
	m.HTML = "<p>\n.x</p>"
	send(t, s, m)
	m.Key = "k2"
	send(t, s, m)
	for _, rec := range p.Messages() {
		body, err := parts(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if body["text/plain"] != m.Text || body["text/html"] != m.HTML {
			t.Errorf("parts = %q, want text %q and html %q", body, m.Text, m.HTML)
		}
	}
}

// The cache keeps a few contents, most recently used first, for at most
// a minute.
func TestContentCache(t *testing.T) {
	clock := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	s.contents.now = func() time.Time { return clock }
	content := func(subject string) *content {
		t.Helper()
		m := message("k")
		m.Subject = subject
		o, _, err := s.prepare(m)
		if err != nil {
			t.Fatal(err)
		}
		return o.shared
	}

	first := content("one")
	if content("one") != first {
		t.Error("the same content was composed twice")
	}
	if content("two") == first {
		t.Error("another subject got the first content")
	}
	for i := range maxContents {
		content(fmt.Sprintf("filler %d", i))
	}
	if n := len(s.contents.entries); n != maxContents {
		t.Errorf("cache holds %d contents, want %d", n, maxContents)
	}
	if content("one") == first {
		t.Error("the least recently used content was not evicted")
	}

	again := content("one")
	clock = clock.Add(maxContentAge - time.Second)
	if content("one") != again {
		t.Error("a content younger than a minute was composed again")
	}
	clock = clock.Add(time.Second)
	if content("one") == again {
		t.Error("a content a minute old was reused")
	}
}
