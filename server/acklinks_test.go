package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

const (
	ackTestSecret   = "ack-link-secret-for-server-tests-0123456789"
	slackTestSecret = "slack-signing-secret-0123456789abcdef"
)

// ackClock is a clock the test moves.
type ackClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ackClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *ackClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ackHarness is a running server with acknowledgement links and Slack
// interactions over a real store: one trigger asking dr-a (English; SMS
// and email) and dr-b (Welsh; email) to acknowledge.
type ackHarness struct {
	t        *testing.T
	clk      *ackClock
	st       *store.Store
	signer   *dispatch.AckSigner
	srv      *httptest.Server
	trigger  int64
	mu       sync.Mutex
	acked    []int64
	observed []string
}

func newAckHarness(t *testing.T) *ackHarness {
	t.Helper()
	ctx := context.Background()
	h := &ackHarness{t: t, clk: &ackClock{t: time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)}}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "crier.db"), store.WithClock(h.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st
	h.trigger = seedAckTrigger(t, st, h.clk.Now())
	h.signer = dispatch.NewAckSigner(ackTestSecret, time.Hour, "")
	h.srv = httptest.NewServer(New(Options{Store: st, Acks: &AckOptions{Tokens: h.signer, Store: st, SlackSigningSecret: fields.Secret(slackTestSecret),
		Now: h.clk.Now, Acked: func(id int64) { h.mu.Lock(); h.acked = append(h.acked, id); h.mu.Unlock() }},
		WebhookObserved: func(route, outcome string) {
			h.mu.Lock()
			h.observed = append(h.observed, route+" "+outcome)
			h.mu.Unlock()
		}}))
	t.Cleanup(h.srv.Close)
	return h
}

// seedAckTrigger plans, in st, one trigger asking dr-a (English; SMS and
// email) and dr-b (Welsh; email) to acknowledge within 15 minutes of now,
// and returns its id.
func seedAckTrigger(t *testing.T, st *store.Store, now time.Time) int64 {
	t.Helper()
	var trigger int64
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.UpsertSubscribers([]subscribers.Subscriber{
			{ID: "dr-a", Name: "Dr Ann Evans", Locale: "en", TimeZone: "Europe/London"},
			{ID: "dr-b", Name: "Dr Bethan Hughes", Locale: "cy", TimeZone: "Europe/London"},
		}, "config"); err != nil {
			return err
		}
		tr := &store.Trigger{Key: "incident:INC-1:1", Kind: "incident", Name: "open"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		trigger = tr.ID
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for _, d := range []store.NewDelivery{
			{SubscriberID: "dr-a", Channel: "sms", Kind: "sms", Address: "+447400123401", Status: store.StatusQueued, Text: "CRITICAL INC-1: Referrals down", Ack: true},
			{SubscriberID: "dr-a", Channel: "email", Kind: "email", Address: "a@example.org", Status: store.StatusQueued, Subject: "[CRITICAL] INC-1: Referrals <down>", Text: "x", Ack: true},
			{SubscriberID: "dr-b", Channel: "email", Kind: "email", Address: "b@example.org", Status: store.StatusQueued, Subject: "[CRITIGOL] INC-1", Text: "x", Ack: true},
		} {
			if err := enq.Add(&d); err != nil {
				return err
			}
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		return tx.SetAckPolicy(store.AckPolicy{TriggerID: tr.ID, Within: 15 * time.Minute, DueAt: now.Add(15 * time.Minute)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return trigger
}

// token is a link token for sub, valid for an hour from now.
func (h *ackHarness) token(sub string) string {
	return h.signer.Token(dispatch.AckClaim{TriggerID: h.trigger, SubscriberID: sub, Expires: h.clk.Now().Add(time.Hour)})
}

type ackResponse struct {
	code   int
	header http.Header
	body   string
}

func (h *ackHarness) do(method, path string) ackResponse {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return ackResponse{resp.StatusCode, resp.Header, string(b)}
}

// acks is what the store holds for the trigger.
func (h *ackHarness) acks() map[string]store.Ack {
	h.t.Helper()
	a, err := h.st.Acks(context.Background(), h.trigger)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func TestAckLink_Get_ShowsConfirmAndRecordsNothing(t *testing.T) {
	h := newAckHarness(t)
	tok := h.token("dr-a")
	for range 3 { // a mail scanner, a preview, the person
		r := h.do("GET", AckPath+tok)
		if r.code != http.StatusOK {
			t.Fatalf("GET: %d\n%s", r.code, r.body)
		}
		for _, want := range []string{`<html lang="en">`, "Acknowledge this message", "[CRITICAL] INC-1: Referrals &lt;down&gt;", "Dr Ann Evans",
			`<form method="post">`, `<button type="submit"`, "Confirm acknowledgement", "only the button below does", "14:15"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("the page lacks %q:\n%s", want, r.body)
			}
		}
		for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}
	if a := h.acks(); len(a) != 0 {
		t.Errorf("GET acknowledged: %+v", a)
	}
	cy := h.do("GET", AckPath+h.token("dr-b"))
	if cy.code != http.StatusOK || !strings.Contains(cy.body, `<html lang="cy">`) || !strings.Contains(cy.body, "Cydnabod y neges hon") ||
		!strings.Contains(cy.body, "Cadarnhau&#39;r gydnabyddiaeth") {
		t.Errorf("dr-b's page is not in Welsh: %d\n%s", cy.code, cy.body)
	}
}

func TestAckLink_Post_RecordsOnce(t *testing.T) {
	h := newAckHarness(t)
	tok := h.token("dr-a")
	h.clk.Add(3 * time.Minute)
	r := h.do("POST", AckPath+tok)
	if r.code != http.StatusOK || !strings.Contains(r.body, "Acknowledged") || !strings.Contains(r.body, "recorded at") {
		t.Fatalf("POST: %d\n%s", r.code, r.body)
	}
	h.clk.Add(time.Minute)
	again := h.do("POST", AckPath+tok)
	if again.code != http.StatusOK || !strings.Contains(again.body, "Already acknowledged") || !strings.Contains(again.body, "14:03") {
		t.Errorf("second POST: %d\n%s", again.code, again.body)
	}
	a := h.acks()
	if len(a) != 1 || a["dr-a"].Via != "email" || !a["dr-a"].At.Equal(h.clk.Now().Add(-time.Minute)) {
		t.Fatalf("acks %+v, want one by email at the first POST", a)
	}
	ev, _ := h.st.Events(context.Background(), a["dr-a"].DeliveryID)
	n := 0
	for _, e := range ev {
		if e.Status == "acknowledged" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d acknowledged events, want 1: %+v", n, ev)
	}
	if len(h.acked) != 1 || h.acked[0] != h.trigger {
		t.Errorf("Acked heard %v, want the trigger once", h.acked)
	}
	if page := h.do("GET", AckPath+tok); !strings.Contains(page.body, "Already acknowledged") || strings.Contains(page.body, "<form") {
		t.Errorf("GET after acknowledging still offers the button:\n%s", page.body)
	}
}

func TestAckLink_Refused(t *testing.T) {
	h := newAckHarness(t)
	good := h.token("dr-a")
	swap := byte('A')
	if good[10] == 'A' {
		swap = 'B'
	}
	altered := good[:10] + string(swap) + good[11:] // a character of the payload changed
	expired := h.signer.Token(dispatch.AckClaim{TriggerID: h.trigger, SubscriberID: "dr-a", Expires: h.clk.Now().Add(-time.Second)})
	stranger := h.token("nobody")
	tests := []struct {
		name, token string
		code        int
		text        string
	}{
		{"expired", expired, http.StatusGone, "This link has expired"},
		{"altered", altered, http.StatusForbidden, "This link is not valid"},
		{"truncated", good[:len(good)-3], http.StatusForbidden, "This link is not valid"},
		{"garbage", "not-a-token", http.StatusForbidden, "This link is not valid"},
		{"nothing to acknowledge", stranger, http.StatusNotFound, "Nothing to acknowledge"},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "POST"} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				r := h.do(method, AckPath+tt.token)
				if r.code != tt.code || !strings.Contains(r.body, tt.text) || strings.Contains(r.body, "<form") {
					t.Errorf("%d, want %d with %q and no button:\n%s", r.code, tt.code, tt.text, r.body)
				}
				if tt.code != http.StatusNotFound && !strings.Contains(r.body, `lang="cy"`) {
					t.Errorf("a page for an unreadable token is not also in Welsh:\n%s", r.body)
				}
			})
		}
	}
	if a := h.acks(); len(a) != 0 {
		t.Errorf("a refused link acknowledged: %+v", a)
	}
}

func TestAckLink_NotServedWithoutSigner(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + AckPath + "anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("%d, want 404", resp.StatusCode)
	}
}
