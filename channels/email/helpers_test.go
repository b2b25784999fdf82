package email

import (
	"context"
	"crypto/tls"
	"slices"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

// testPassword is long and distinctive so that a leak is unmistakable.
const testPassword = "hunter2-Sw0rdf1sh-never-print-me"

// testInstallation is an installation id of the form the store makes.
const testInstallation = "5f0c2a9e41d7b3866e1f0a2c9d4b7e13"

// peerConfig is a Config pointing at p: plain TCP unless changed, the
// peer's credentials when it has them.
func peerConfig(p *channeltest.SMTPPeer, mods ...func(*Config)) Config {
	c := Config{
		Host:    p.Host,
		Port:    p.Port,
		TLS:     TLSNone,
		From:    `"Crier Test" <crier@example.org>`,
		ReplyTo: "desk@example.org",
		Timeout: 5 * time.Second,
	}
	if p.Username != "" {
		c.Username, c.Password = p.Username, fields.Secret(p.Password)
	}
	for _, m := range mods {
		m(&c)
	}
	return c
}

// newSender builds a Sender for testInstallation; opts may set another.
func newSender(tb testing.TB, c Config, opts ...Option) *Sender {
	tb.Helper()
	s, err := New("test-email", c, append([]Option{WithInstallation(testInstallation)}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func trust(p *channeltest.SMTPPeer) Option {
	return WithTLSConfig(&tls.Config{RootCAs: p.RootCAs})
}

func message(key string) channels.Message {
	return channels.Message{
		Key:     key,
		Address: "minister@example.gov",
		Subject: "[SEV1] Helpline referrals down in all four nations",
		Text:    "Referrals are down.\nUse the paper process until further notice.",
		HTML:    "<p>Referrals are <b>down</b>.</p>",
	}
}

func send(tb testing.TB, s *Sender, m channels.Message) channels.Receipt {
	tb.Helper()
	r, err := s.Send(context.Background(), m)
	if err != nil {
		tb.Fatalf("Send(%q): %v", m.Key, err)
	}
	return r
}

// wantPeerGot checks that the peer received messages to exactly want, in
// order, on one connection.
func wantPeerGot(t *testing.T, p *channeltest.SMTPPeer, want ...string) {
	t.Helper()
	var to []string
	for _, m := range p.Messages() {
		to = append(to, m.To...)
	}
	if !slices.Equal(to, want) || p.Connections() != 1 {
		t.Errorf("peer got messages to %q on %d connections, want %q on 1", to, p.Connections(), want)
	}
}
