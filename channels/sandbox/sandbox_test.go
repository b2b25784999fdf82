package sandbox

import (
	"context"
	"testing"

	"github.com/crier-dev/crier/channels"
)

func TestSender_Send(t *testing.T) {
	s, err := New("sms", Config{Kind: "sms", FailAddresses: []string{"+447400999999"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Send(context.Background(), channels.Message{DeliveryID: 7, Address: "+447400123456", Text: "hello"})
	if err != nil || r.ProviderID == "" || r.Status != "accepted" {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	_, err = s.Send(context.Background(), channels.Message{DeliveryID: 8, Address: "+447400999999", Text: "hello"})
	if reason, retry, _ := channels.Classify(err); reason != channels.ReasonBadAddress || retry {
		t.Fatalf("configured failure classified %s retry=%v", reason, retry)
	}
	if got := s.Recent(); len(got) != 1 || got[0].Message.Text != "hello" {
		t.Fatalf("Recent = %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Send(ctx, channels.Message{Address: "+447400123456"}); err == nil {
		t.Fatal("a cancelled send succeeded")
	}
}

func TestSender_Threads(t *testing.T) {
	s, _ := New("slack", Config{Kind: "slack"})
	first, _ := s.Send(context.Background(), channels.Message{DeliveryID: 1, Address: "C0RESPONSE1"})
	second, _ := s.Send(context.Background(), channels.Message{DeliveryID: 2, Address: "C0RESPONSE1", Thread: first.Thread})
	if first.Thread == "" || second.Thread != first.Thread {
		t.Fatalf("threads %q then %q, want the second in the first's thread", first.Thread, second.Thread)
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, c := range []Config{{}, {Kind: "fax"}, {Kind: "sms", Latency: -1}} {
		if len(c.Validate()) == 0 {
			t.Errorf("%+v accepted", c)
		}
	}
	if l := (Config{Kind: "email"}).Validate(); len(l) != 0 {
		t.Errorf("valid config rejected: %v", l)
	}
}
