package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
)

const testAckSecret = "ack-secret-for-tests-0123456789abcdef"

func TestAckSigner_Verify_RoundTrip(t *testing.T) {
	s := NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org/")
	exp := t0.Add(time.Hour)
	tests := []struct {
		name  string
		claim AckClaim
	}{
		{"trigger and subscriber", AckClaim{TriggerID: 42, SubscriberID: "dr-morgan", Expires: exp}},
		{"long subscriber id", AckClaim{TriggerID: 1 << 40, SubscriberID: strings.Repeat("x", 200), Expires: exp}},
		{"delivery", AckClaim{DeliveryID: 9876543, Expires: exp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := s.Token(tt.claim)
			if strings.ContainsAny(tok, "+/=") {
				t.Errorf("token %q is not URL-safe base64 without padding", tok)
			}
			got, err := s.Verify(tok, t0)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.claim {
				t.Errorf("Verify = %+v, want %+v", got, tt.claim)
			}
			if u := s.URL(tok); u != "https://crier.example.org/ack/"+tok {
				t.Errorf("URL = %q", u)
			}
		})
	}
}

func TestAckSigner_Verify_Refuses(t *testing.T) {
	s := NewAckSigner(testAckSecret, time.Hour, "")
	good := s.Token(AckClaim{TriggerID: 42, SubscriberID: "dr-morgan", Expires: t0.Add(time.Hour)})
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// A token whose expiry was pushed later by hand: its MAC no longer fits.
	later := s.Token(AckClaim{TriggerID: 42, SubscriberID: "dr-morgan", Expires: t0.Add(100 * time.Hour)})
	laterRaw, _ := base64.RawURLEncoding.DecodeString(later)
	forgedExpiry := base64.RawURLEncoding.EncodeToString(append(laterRaw[:len(laterRaw)-ackMACLen:len(laterRaw)-ackMACLen], raw[len(raw)-ackMACLen:]...))
	other := NewAckSigner("another-secret-0123456789abcdefghij", time.Hour, "")
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired", good, t0.Add(time.Hour), ErrAckTokenExpired},
		{"long expired", good, t0.Add(48 * time.Hour), ErrAckTokenExpired},
		{"payload bit flipped", flip(3), t0, ErrAckTokenInvalid},
		{"subscriber changed", flip(len(raw) - ackMACLen - 1), t0, ErrAckTokenInvalid},
		{"mac bit flipped", flip(len(raw) - 1), t0, ErrAckTokenInvalid},
		{"expiry moved", forgedExpiry, t0.Add(2 * time.Hour), ErrAckTokenInvalid},
		{"truncated", good[:len(good)-4], t0, ErrAckTokenInvalid},
		{"empty", "", t0, ErrAckTokenInvalid},
		{"not base64", "!!!not-a-token!!!", t0, ErrAckTokenInvalid},
		{"other secret", other.Token(AckClaim{TriggerID: 42, SubscriberID: "dr-morgan", Expires: t0.Add(time.Hour)}), t0, ErrAckTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(tt.token, tt.at)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAckSigner_Verify_SinglePurpose(t *testing.T) {
	// The same secret HMACed over the same payload without crier's purpose
	// prefix (as another feature signing with it would) does not verify.
	s := NewAckSigner(testAckSecret, time.Hour, "")
	tok := s.Token(AckClaim{DeliveryID: 7, Expires: t0.Add(time.Hour)})
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	payload := raw[:len(raw)-ackMACLen]
	h := hmac.New(sha256.New, []byte(testAckSecret))
	h.Write(payload)
	m := h.Sum(nil)[:ackMACLen]
	if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), payload...), m...)), t0); !errors.Is(err, ErrAckTokenInvalid) {
		t.Errorf("a MAC without the purpose verified: %v", err)
	}
}

func TestStripAckLines(t *testing.T) {
	in := "CRITICAL INC-1: Referrals down\nReply ACK by 10:15 to confirm.\nWales:\n- Referrals: Outage.\n" +
		"Atebwch ACK erbyn 10:15 i gadarnhau.\nAcknowledge: https://crier.example.org/ack/abc\nsee https://x.example/ack/def too"
	want := "CRITICAL INC-1: Referrals down\nWales:\n- Referrals: Outage."
	if got := stripAckLines(in); got != want {
		t.Errorf("stripAckLines =\n%q\nwant\n%q", got, want)
	}
}

// askStore answers DeliveryAsksAck from a map.
type askStore map[int64]bool

func (a askStore) DeliveryAsksAck(_ context.Context, id int64) (bool, time.Time, error) {
	return a[id], t0, nil
}

func TestAckButtons_Send_AddsTokenOrLink(t *testing.T) {
	signer := NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org")
	tests := []struct {
		name        string
		interactive bool
		delivery    int64
		wantKey     string
	}{
		{"interactive", true, 1, "ack_token"},
		{"link", false, 1, "ack_url"},
		{"no ack asked", true, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newTestChannel("slack", channels.KindSlack, nil)
			ch := AckButtons(inner, askStore{1: true, 2: false}, signer, tt.interactive)
			if _, err := ch.Send(context.Background(), channels.Message{DeliveryID: tt.delivery, Key: "k", Metadata: map[string]string{"trigger": "x"}}); err != nil {
				t.Fatal(err)
			}
			md := inner.messages()[0].Metadata
			if md["trigger"] != "x" {
				t.Errorf("metadata lost: %v", md)
			}
			for _, k := range []string{"ack_token", "ack_url"} {
				if (md[k] != "") != (k == tt.wantKey) {
					t.Errorf("metadata %s = %q (want set: %v)", k, md[k], k == tt.wantKey)
				}
			}
			tok := md["ack_token"]
			if u := md["ack_url"]; u != "" {
				tok = strings.TrimPrefix(u, "https://crier.example.org/ack/")
			}
			if tt.wantKey != "" {
				c, err := signer.Verify(tok, t0)
				if err != nil || c.DeliveryID != tt.delivery || !c.Expires.Equal(t0.Add(time.Hour)) {
					t.Errorf("token verifies to %+v, %v; want delivery %d expiring an hour after planning", c, err, tt.delivery)
				}
			}
		})
	}
}

func TestPlanner_Preview_AsksAsIfPlannedNow(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("dr-a"))
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		Acks: NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org")})
	req := message("send:preview", "clinicians", "sms")
	req.Ack = &AckPolicy{Within: 20 * time.Minute}
	got, err := p.Preview(context.Background(), st, req, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("Preview = %+v, %v", got, err)
	}
	if !strings.HasPrefix(got[0].Text, "Reply ACK by 14:20 to confirm.\n") {
		t.Errorf("preview text %q, want the acknowledgement line with the deadline as if planned now", got[0].Text)
	}
	if pols, _ := st.AckPolicies(context.Background(), ""); len(pols) != 0 {
		t.Errorf("a preview stored a policy: %+v", pols)
	}
}
