package email

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

func TestSender_Send_ReusesConnection(t *testing.T) {
	for _, tls := range []string{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(tls, func(t *testing.T) {
			var opts []channeltest.SMTPOption
			switch tls {
			case TLSStartTLS:
				opts = append(opts, channeltest.SMTPStartTLS())
			case TLSImplicit:
				opts = append(opts, channeltest.SMTPImplicitTLS())
			}
			opts = append(opts, channeltest.SMTPAuth("crier", testPassword))
			p := channeltest.NewSMTPPeer(t, opts...)
			s := newSender(t, peerConfig(p, func(c *Config) { c.TLS = tls }), trust(p))
			const n = 25
			for i := range n {
				send(t, s, message(fmt.Sprintf("k%d", i)))
			}
			if p.Count() != n || p.Connections() != 1 {
				t.Errorf("peer got %d messages on %d connections, want %d on 1", p.Count(), p.Connections(), n)
			}
		})
	}
}

// A server that hung up on an idle pooled connection costs a redial, not
// a failed delivery.
func TestSender_Send_RedialsDroppedConnection(t *testing.T) {
	tests := []struct {
		name  string
		opts  []channeltest.SMTPOption
		drop  func(t *testing.T, p *channeltest.SMTPPeer)
		conns int
	}{
		{name: "dropped silently", drop: func(_ *testing.T, p *channeltest.SMTPPeer) { p.DropConnections() }, conns: 2},
		{name: "idle timeout with 421", opts: []channeltest.SMTPOption{channeltest.SMTPIdleTimeout(300 * time.Millisecond)},
			drop: func(t *testing.T, p *channeltest.SMTPPeer) { p.WaitClosed(t, 1) }, conns: 2},
		// Every message gets its own connection; the hang-up right after
		// the 250 must not turn a delivered message into a failure.
		{name: "closed right after each reply", opts: []channeltest.SMTPOption{channeltest.SMTPDropAfter(1)},
			drop: func(t *testing.T, p *channeltest.SMTPPeer) { p.WaitClosed(t, 1) }, conns: 3},
		{name: "starttls dropped silently", opts: []channeltest.SMTPOption{channeltest.SMTPStartTLS()},
			drop: func(_ *testing.T, p *channeltest.SMTPPeer) { p.DropConnections() }, conns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := channeltest.NewSMTPPeer(t, tt.opts...)
			tlsMode := TLSNone
			if p.RootCAs != nil {
				tlsMode = TLSStartTLS
			}
			s := newSender(t, peerConfig(p, func(c *Config) { c.TLS = tlsMode }), trust(p))
			send(t, s, message("before"))
			tt.drop(t, p)
			send(t, s, message("after"))
			send(t, s, message("after again"))
			if p.Count() != 3 || p.Connections() != tt.conns {
				t.Errorf("peer got %d messages on %d connections, want 3 on %d", p.Count(), p.Connections(), tt.conns)
			}
		})
	}
}

func TestSender_Send_Concurrent(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPLatency(time.Millisecond))
	s := newSender(t, peerConfig(p, func(c *Config) { c.PoolSize = 3 }))
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := s.Send(t.Context(), message(fmt.Sprintf("k%d", i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p.Count() != n || p.Connections() > 3 {
		t.Errorf("peer got %d messages on %d connections, want %d on at most 3", p.Count(), p.Connections(), n)
	}
	keys := map[string]bool{}
	for _, m := range p.Messages() {
		keys[m.Header.Get("X-Crier-Delivery")] = true
	}
	if len(keys) != n {
		t.Errorf("peer got %d distinct messages, want %d", len(keys), n)
	}
}

// A refused message leaves the connection usable for the next one.
func TestSender_Send_KeepsConnectionAfterRefusal(t *testing.T) {
	refuse := map[channeltest.SMTPStage]string{
		channeltest.SMTPStageRcpt: "rcpt@example.gov",
		channeltest.SMTPStageData: "data@example.gov",
	}
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(stage channeltest.SMTPStage, addr string) error {
		if refuse[stage] == addr {
			return channeltest.SMTPReply(554, "5.7.1", "policy")
		}
		return nil
	}))
	s := newSender(t, peerConfig(p))
	for _, addr := range []string{"rcpt@example.gov", "ok@example.gov", "data@example.gov", "ok@example.gov"} {
		m := message("k-" + addr)
		m.Address = addr
		_, err := s.Send(t.Context(), m)
		if (err != nil) != (addr != "ok@example.gov") {
			t.Errorf("Send to %s: err = %v", addr, err)
		}
	}
	if p.Count() != 2 || p.Connections() != 1 {
		t.Errorf("peer got %d messages on %d connections, want 2 on 1", p.Count(), p.Connections())
	}
}

// The caller's deadline bounds a send even when the configured timeout
// is much longer.
func TestSender_Send_ContextDeadline(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPLatency(time.Minute))
	s := newSender(t, peerConfig(p, func(c *Config) { c.Timeout = time.Minute }))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, message("k"))
	reason, retryable, _ := channels.Classify(err)
	if reason != channels.ReasonTimeout || !retryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Classify(%v) = %s, %v; want temporary timeout wrapping context.DeadlineExceeded", err, reason, retryable)
	}
}

func TestSender_Close(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	send(t, s, message("k"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p.WaitClosed(t, 1)
	_, err := s.Send(t.Context(), message("k2"))
	if reason, retryable, _ := channels.Classify(err); !errors.Is(err, ErrClosed) || !retryable {
		t.Errorf("Send after Close: %v (%s, retryable %v), want temporary ErrClosed", err, reason, retryable)
	}
	if p.Count() != 1 || p.Connections() != 1 {
		t.Errorf("peer got %d messages on %d connections, want 1 on 1", p.Count(), p.Connections())
	}
}
