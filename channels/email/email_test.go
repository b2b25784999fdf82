package email

import (
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

func TestSender_Send_Delivers(t *testing.T) {
	tests := []struct {
		name     string
		peerOpts []channeltest.SMTPOption
		mod      func(*Config)
		trust    bool
		wantTLS  bool
		wantAuth string
	}{
		{name: "plain"},
		{name: "starttls", peerOpts: []channeltest.SMTPOption{channeltest.SMTPStartTLS()},
			mod: func(c *Config) { c.TLS = TLSStartTLS }, trust: true, wantTLS: true},
		{name: "opportunistic offered", peerOpts: []channeltest.SMTPOption{channeltest.SMTPStartTLS()},
			mod: func(c *Config) { c.TLS = TLSOpportunistic }, trust: true, wantTLS: true},
		{name: "opportunistic not offered", mod: func(c *Config) { c.TLS = TLSOpportunistic }},
		{name: "implicit tls", peerOpts: []channeltest.SMTPOption{channeltest.SMTPImplicitTLS()},
			mod: func(c *Config) { c.TLS = TLSImplicit }, trust: true, wantTLS: true},
		{name: "auth plain", peerOpts: []channeltest.SMTPOption{channeltest.SMTPAuth("crier", testPassword)},
			wantAuth: "crier"},
		{name: "auth login over starttls",
			peerOpts: []channeltest.SMTPOption{channeltest.SMTPStartTLS(), channeltest.SMTPAuth("crier", testPassword)},
			mod:      func(c *Config) { c.TLS, c.Auth = TLSStartTLS, AuthLogin }, trust: true, wantTLS: true, wantAuth: "crier"},
		{name: "auth plain over implicit tls",
			peerOpts: []channeltest.SMTPOption{channeltest.SMTPImplicitTLS(), channeltest.SMTPAuth("crier", testPassword)},
			mod:      func(c *Config) { c.TLS = TLSImplicit }, trust: true, wantTLS: true, wantAuth: "crier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := channeltest.NewSMTPPeer(t, tt.peerOpts...)
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			var opts []Option
			if tt.trust {
				opts = append(opts, trust(p))
			}
			now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
			opts = append(opts, WithNow(func() time.Time { return now }))
			s := newSender(t, peerConfig(p, mods...), opts...)

			m := message("brief/2025-03-04T08:00/sub-17/email")
			r := send(t, s, m)

			got := p.Messages()
			if len(got) != 1 {
				t.Fatalf("peer received %d messages, want 1", len(got))
			}
			rec := got[0]
			if rec.From != "crier@example.org" || len(rec.To) != 1 || rec.To[0] != m.Address {
				t.Errorf("envelope = %q -> %q, want crier@example.org -> [%s]", rec.From, rec.To, m.Address)
			}
			if rec.TLS != tt.wantTLS || rec.Auth != tt.wantAuth {
				t.Errorf("TLS, AUTH = %v, %q; want %v, %q", rec.TLS, rec.Auth, tt.wantTLS, tt.wantAuth)
			}
			if rec.Helo != "example.org" {
				t.Errorf("EHLO name = %q, want the from domain example.org", rec.Helo)
			}
			h := rec.Header
			for key, want := range map[string]string{
				"From":             `"Crier Test" <crier@example.org>`,
				"To":               "<minister@example.gov>",
				"Reply-To":         "<desk@example.org>",
				"Subject":          m.Subject,
				"Message-Id":       r.ProviderID,
				"X-Crier-Delivery": m.Key,
				"Auto-Submitted":   "auto-generated",
				"Date":             "Tue, 04 Mar 2025 08:00:00 +0000",
				"X-Mailer":         "",
				"User-Agent":       "",
				"In-Reply-To":      "",
			} {
				if g := h.Get(key); g != want {
					t.Errorf("header %s = %q, want %q", key, g, want)
				}
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "multipart/alternative;") {
				t.Errorf("Content-Type = %q, want multipart/alternative", h.Get("Content-Type"))
			}
			body, err := parts(rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			if body["text/plain"] != m.Text || body["text/html"] != m.HTML {
				t.Errorf("parts = %q, want text %q and html %q", body, m.Text, m.HTML)
			}
			if r.Thread != r.ProviderID || !strings.HasPrefix(r.Status, "250") {
				t.Errorf("receipt = %+v, want Thread = ProviderID and a 250 status", r)
			}
		})
	}
}

func TestSender_Send_TextOnly(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	m := message("k1")
	m.HTML = ""
	m.Text = "Grüße — naïve café ✓\r\nline two"
	send(t, s, m)
	rec := p.Messages()[0]
	if ct := rec.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	body, err := parts(rec.Data)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(m.Text, "\r\n", "\n"); body["text/plain"] != want {
		t.Errorf("text = %q, want %q", body["text/plain"], want)
	}
}

func TestSender_Send_MessageID(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p, func(c *Config) { c.MessageIDDomain = "crier.example.net" }))
	r1 := send(t, s, message("incident-42/update-3/sub-9/email"))
	r2 := send(t, s, message("incident-42/update-3/sub-9/email")) // a resend
	r3 := send(t, s, message("incident-42/update-4/sub-9/email"))

	got := p.Messages()
	ids := []string{got[0].Header.Get("Message-Id"), got[1].Header.Get("Message-Id"), got[2].Header.Get("Message-Id")}
	if ids[0] != r1.ProviderID || ids[1] != r2.ProviderID || ids[2] != r3.ProviderID {
		t.Errorf("peer Message-IDs %q differ from receipts %q %q %q", ids, r1.ProviderID, r2.ProviderID, r3.ProviderID)
	}
	if ids[0] != ids[1] {
		t.Errorf("same key gave %q and %q, want the same Message-ID", ids[0], ids[1])
	}
	if ids[0] == ids[2] {
		t.Errorf("different keys gave the same Message-ID %q", ids[0])
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@crier.example.net>") {
			t.Errorf("Message-ID %q, want <hash@crier.example.net>", id)
		}
	}
}

// TestSender_Send_MessageIDPerInstallation: the same delivery key sent
// for two installations (two databases) gets two Message-IDs at the
// peer; sent again for the same installation (a resend, by this process,
// by a restarted one, or in a batch) it keeps its own.
func TestSender_Send_MessageIDPerInstallation(t *testing.T) {
	const (
		instA = "9b1de3a07c4f28e5d6a1b0c3e7f49a21"
		instB = "0e6f3c2a9d8b17f4a5c0e2d1b3f6a789"
		key   = "incident:INC-1:1/minister-health/ministers-email"
	)
	p := channeltest.NewSMTPPeer(t)
	a := newSender(t, peerConfig(p), WithInstallation(instA))
	restarted := newSender(t, peerConfig(p), WithInstallation(instA))
	b := newSender(t, peerConfig(p), WithInstallation(instB))

	ra := send(t, a, message(key))
	resend := send(t, a, message(key))
	rr := send(t, restarted, message(key))
	rb := send(t, b, message(key))
	batch := b.SendBatch(t.Context(), []channels.Message{message(key)})
	if len(batch) != 1 || batch[0].Err != nil {
		t.Fatalf("SendBatch: %+v", batch)
	}

	got := p.Messages()
	if len(got) != 5 {
		t.Fatalf("peer got %d messages, want 5", len(got))
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, m.Header.Get("Message-Id"))
	}
	receipts := []string{ra.ProviderID, resend.ProviderID, rr.ProviderID, rb.ProviderID, batch[0].Receipt.ProviderID}
	for i := range ids {
		if ids[i] == "" || ids[i] != receipts[i] {
			t.Errorf("message %d: the peer got Message-ID %q, the receipt says %q", i+1, ids[i], receipts[i])
		}
	}
	if ids[0] != ids[1] || ids[0] != ids[2] {
		t.Errorf("one installation gave the same delivery %q, %q and %q; want one Message-ID", ids[0], ids[1], ids[2])
	}
	if ids[3] != ids[4] {
		t.Errorf("installation B gave %q by Send and %q by SendBatch", ids[3], ids[4])
	}
	if ids[0] == ids[3] {
		t.Errorf("two installations gave delivery %q the same Message-ID %q", key, ids[0])
	}
}

func TestNew_RequiresInstallation(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	for _, opts := range [][]Option{nil, {WithInstallation("")}} {
		if _, err := New("ministers-email", peerConfig(p), opts...); err == nil || !strings.Contains(err.Error(), "installation") {
			t.Errorf("New without an installation id: %v, want an error naming it", err)
		}
	}
}

func TestSender_Send_Thread(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	first := send(t, s, message("incident-42/opened/sub-9/email"))

	update := message("incident-42/update-1/sub-9/email")
	update.Thread = first.Thread
	r := send(t, s, update)

	h := p.Messages()[1].Header
	if h.Get("In-Reply-To") != first.ProviderID || h.Get("References") != first.ProviderID {
		t.Errorf("In-Reply-To %q, References %q; want both %q",
			h.Get("In-Reply-To"), h.Get("References"), first.ProviderID)
	}
	if r.Thread != first.Thread || r.ProviderID == first.ProviderID {
		t.Errorf("receipt %+v; want Thread %q unchanged and a new ProviderID", r, first.Thread)
	}
}

func TestSender_Send_RefusesBadMessage(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*channels.Message)
		reason channels.Reason
	}{
		{"bad address", func(m *channels.Message) { m.Address = "not an address" }, channels.ReasonBadAddress},
		{"empty address", func(m *channels.Message) { m.Address = "" }, channels.ReasonBadAddress},
		{"no key", func(m *channels.Message) { m.Key = "" }, channels.ReasonRejected},
		{"header injection in thread", func(m *channels.Message) { m.Thread = "<a@b>\r\nBcc: x@evil.example" }, channels.ReasonRejected},
	}
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message("k")
			tt.mod(&m)
			_, err := s.Send(t.Context(), m)
			reason, retryable, _ := channels.Classify(err)
			if reason != tt.reason || retryable {
				t.Errorf("Classify(%v) = %s, retryable %v; want permanent %s", err, reason, retryable, tt.reason)
			}
		})
	}
	if p.Count() != 0 || p.Connections() != 0 {
		t.Errorf("peer saw %d messages on %d connections, want none", p.Count(), p.Connections())
	}
}
