// Package sandbox is crier's embedded default channel: it stands in for a
// real SMS, email or Slack channel, accepts every message at once and keeps
// nothing but what the delivery log already records (the exact rendered
// subject, text and HTML), so the whole pipeline runs with no credentials.
package sandbox

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/templates"
)

// Config is a sandbox instance's settings.
type Config struct {
	// Kind is the kind of channel this sandbox stands in for: sms, email or slack.
	Kind string `yaml:"kind"`
	// Latency is added to every send, to rehearse a slow provider.
	Latency time.Duration `yaml:"latency"`
	// FailAddresses makes sends to these addresses fail permanently with
	// reason bad_address, to rehearse failures.
	FailAddresses []string `yaml:"fail_addresses"`
	// Keep is how many recent messages to keep in memory for the
	// dashboard's sandbox view (0 = 200).
	Keep int `yaml:"keep"`
}

// Validate reports every problem with c.
func (c Config) Validate() fields.List {
	var l fields.List
	if c.Kind == "" {
		l.Add("kind", "", "is required for a sandbox channel: sms, email or slack (the kind it stands in for)")
	} else if _, err := channels.ParseKind(c.Kind); err != nil {
		l.Add("kind", c.Kind, "must be sms, email or slack")
	}
	if c.Latency < 0 {
		l.Add("latency", c.Latency.String(), "must not be negative")
	}
	return l
}

// Sender is one sandbox instance.
type Sender struct {
	name   string
	kind   channels.Kind
	cfg    Config
	fail   map[string]bool
	seq    atomic.Int64
	mu     sync.Mutex
	recent []Sent
}

// Sent is a message the sandbox accepted.
type Sent struct {
	At      time.Time
	Message channels.Message
	Receipt channels.Receipt
}

var _ channels.Channel = (*Sender)(nil)

// New builds a sandbox instance from a validated config.
func New(name string, c Config) (*Sender, error) {
	k, err := channels.ParseKind(c.Kind)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	if c.Keep == 0 {
		c.Keep = 200
	}
	s := &Sender{name: name, kind: k, cfg: c, fail: map[string]bool{}}
	for _, a := range c.FailAddresses {
		s.fail[a] = true
	}
	return s, nil
}

// Name is the instance name.
func (s *Sender) Name() string { return s.name }

// Kind is the kind this sandbox stands in for.
func (s *Sender) Kind() channels.Kind { return s.kind }

// Send accepts m (after the configured latency) unless its address is one
// of the configured failures.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return channels.Receipt{}, channels.Temporary(channels.ReasonTimeout, "", 0, ctx.Err())
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, channels.Temporary(channels.ReasonTimeout, "", 0, err)
	}
	if m.Address == "" {
		return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "", fmt.Errorf("sandbox %s: empty address", s.name))
	}
	if s.fail[m.Address] {
		return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "sandbox", fmt.Errorf("sandbox %s: address configured to fail", s.name))
	}
	n := s.seq.Add(1)
	r := channels.Receipt{ProviderID: fmt.Sprintf("sandbox-%s-%d-%d", strings.ToLower(string(s.kind)), m.DeliveryID, n), Status: "accepted"}
	switch s.kind {
	case channels.KindSMS:
		// As a provider would, the sandbox counts the parts it "sent".
		_, r.Segments = templates.SMSSegments(m.Text)
	case channels.KindSlack, channels.KindEmail:
		r.Thread = m.Thread
		if r.Thread == "" {
			r.Thread = r.ProviderID
		}
	}
	s.mu.Lock()
	s.recent = append(s.recent, Sent{At: time.Now(), Message: m, Receipt: r})
	if len(s.recent) > s.cfg.Keep {
		s.recent = s.recent[len(s.recent)-s.cfg.Keep:]
	}
	s.mu.Unlock()
	return r, nil
}

// Recent returns the messages accepted most recently, oldest first.
func (s *Sender) Recent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.recent...)
}
