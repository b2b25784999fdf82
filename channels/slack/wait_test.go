package slack

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
)

func mustNew(t *testing.T, c Config) *Sender {
	t.Helper()
	s, err := New("pace", c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSender_Wait_HighRate(t *testing.T) {
	s := mustNew(t, Config{Token: "xoxb-pace", PerDestination: 1000})
	for i := range 5 {
		if err := s.Wait(context.Background(), channels.Message{Address: "C1"}); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
}

func TestSender_Wait_PerDestination(t *testing.T) {
	s := mustNew(t, Config{Token: "xoxb-pace", PerDestination: 1})
	c1, c2 := channels.Message{Address: "C1"}, channels.Message{Address: "C2"}
	if err := s.Wait(context.Background(), c1); err != nil {
		t.Fatalf("first wait for C1: %v", err)
	}

	// The next C1 slot is about a second away: a short deadline cannot reach
	// it, and the limiter says so without sleeping.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Wait(short, c1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second wait for C1 = %v, want a deadline error", err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := s.Wait(cancelled, c1); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for C1 with a cancelled ctx = %v, want context.Canceled", err)
	}

	// Another Slack channel has its own limiter.
	if err := s.Wait(short, c2); err != nil {
		t.Fatalf("wait for C2: %v", err)
	}
}

func TestSender_Wait_WebhookSharesOneLimiter(t *testing.T) {
	s := mustNew(t, Config{WebhookURL: fields.Secret("https://hooks.slack.com/services/T/B/x"), PerDestination: 1})
	if err := s.Wait(context.Background(), channels.Message{Address: "C1"}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// A webhook posts to one fixed channel whatever the address says.
	if err := s.Wait(short, channels.Message{Address: "C2"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait = %v, want a deadline error", err)
	}
}

func BenchmarkSender_Wait(b *testing.B) {
	s, err := New("pace", Config{Token: "xoxb-pace", PerDestination: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	m := channels.Message{Address: "C1"}
	for b.Loop() {
		if err := s.Wait(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
