package twilio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// Reconcile finds a message crier may have sent in the peer's Messages
// list by number and text, skips one another delivery already owns, and
// says "not there" only when every message listed to the number carried
// its text.
func TestSender_Reconcile(t *testing.T) {
	ctx := context.Background()
	p := channeltest.NewTwilioPeer(t)
	s := newSender(t, peerConfig(p))
	since := time.Now().Add(-time.Second)
	send := func(to, text string) string {
		t.Helper()
		r, err := s.Send(ctx, channels.Message{DeliveryID: 1, Key: "k/" + to, Address: to, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return r.ProviderID
	}
	first := send("+447400000001", "Referrals down in Wales.")
	second := send("+447400000001", "Referrals down in Wales.") // the same text again, a second delivery
	send("+447400000002", "Something else.")
	// Twilio's "page" of the same number holds other messages too.
	for i := range 60 {
		send("+447400000001", fmt.Sprintf("Older news %d.", i))
	}

	taken := map[string]bool{}
	query := func(addr, text string) channels.Query {
		return channels.Query{DeliveryID: 7, Address: addr, Text: text, Since: since,
			Taken: func(id string) (bool, error) { return taken[id], nil }}
	}
	got, err := s.Reconcile(ctx, query("+447400000001", "Referrals down in Wales."))
	if err != nil || !got.Found || got.Receipt.Status == "" {
		t.Fatalf("Reconcile = %+v, %v; want found with its status", got, err)
	}
	if got.Receipt.ProviderID != second {
		t.Errorf("found %s, want the newest match %s", got.Receipt.ProviderID, second)
	}
	taken[second] = true
	if got, err := s.Reconcile(ctx, query("+447400000001", "Referrals down in Wales.")); err != nil || !got.Found || got.Receipt.ProviderID != first {
		t.Errorf("with %s taken: %+v, %v; want %s", second, got, err, first)
	}
	taken[first] = true
	if got, err := s.Reconcile(ctx, query("+447400000001", "Referrals down in Wales.")); err != nil || got.Found || got.Undecided {
		t.Errorf("with both taken: %+v, %v; want not found", got, err)
	}
	if got, err := s.Reconcile(ctx, query("+447400000003", "Referrals down in Wales.")); err != nil || got.Found || got.Undecided {
		t.Errorf("a number never sent to: %+v, %v; want not found", got, err)
	}
	// Smart Encoding folds curly quotes; a trial account prefixes its text.
	send("+447400000004", "Sent from your Twilio trial account - Use \"paper\" prescriptions...")
	if got, err := s.Reconcile(ctx, query("+447400000004", "Use \u201cpaper\u201d prescriptions\u2026")); err != nil || !got.Found {
		t.Errorf("folded text: %+v, %v; want found", got, err)
	}
}

// A Messages list whose entries come without their text (a service that
// speaks Twilio's API but leaves the field out) cannot tell that a message
// is not there: the answer is undecided, never "not found".
func TestSender_Reconcile_ListWithoutText(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Messages.json") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": []map[string]any{
			{"sid": "SM00000000000000000000000000000001", "to": r.URL.Query().Get("To"), "status": "delivered"},
		}, "page": 0, "page_size": 50, "next_page_uri": nil})
	}))
	t.Cleanup(srv.Close)
	c := peerConfig(p)
	c.APIBaseURL = srv.URL
	s := newSender(t, c)
	got, err := s.Reconcile(context.Background(), channels.Query{Address: "+447400000001", Text: "Referrals down.", Since: time.Now()})
	if err != nil || got.Found || !got.Undecided || !strings.Contains(got.Detail, "without their text") {
		t.Errorf("Reconcile = %+v, %v; want undecided: the list carried no text", got, err)
	}
}
