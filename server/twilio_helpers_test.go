package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// The Twilio webhooks are tested over real HTTP against a real SQLite file.
// crier listens on 127.0.0.1 but its public URL is an https name, as behind
// a proxy: Twilio signs the public URL, and the tests sign it the way
// Twilio does (base64 HMAC-SHA1 of the URL and the sorted form fields),
// written here independently of the validator crier uses.

const (
	hookToken = "twilioWebhookToken0123456789abcd"
	publicURL = "https://crier.example.org/"
)

// hookClock is a clock the test moves.
type hookClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *hookClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *hookClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// hooks is one test's server, store and what the metrics hook heard.
type hooks struct {
	t    *testing.T
	srv  *httptest.Server
	st   *store.Store
	path string
	clk  *hookClock

	mu       sync.Mutex
	observed []string // route outcome
	notified []int64
}

type hookOpt func(*Options)

func newHooks(t *testing.T, opts ...hookOpt) *hooks {
	t.Helper()
	h := &hooks{t: t, clk: &hookClock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}}
	h.path = filepath.Join(t.TempDir(), "crier.db")
	st, err := store.Open(context.Background(), h.path, store.WithClock(h.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st
	o := Options{Store: st, MaxBody: 8192,
		Twilio: &TwilioOptions{AuthToken: fields.Secret(hookToken), PublicURL: publicURL, Store: st,
			Replies: SMSReplies{HelpText: "Help: reply ACK to acknowledge, STOP to stop.", UnknownText: "Sorry, not understood. Reply HELP for help.", AckDigit: "1"},
			Notify: func(id int64) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.notified = append(h.notified, id)
			}},
		WebhookObserved: func(route, outcome string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.observed = append(h.observed, route+" "+outcome)
		},
	}
	for _, f := range opts {
		f(&o)
	}
	h.srv = httptest.NewServer(New(o))
	t.Cleanup(h.srv.Close)
	return h
}

// twilioSign is Twilio's signature of a request to fullURL with form.
func twilioSign(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(form.Get(k))
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signedURL is the public URL Twilio calls for a route and query.
func signedURL(route, query string) string {
	u := strings.TrimRight(publicURL, "/") + route
	if query != "" {
		u += "?" + query
	}
	return u
}

// reply is a webhook's answer.
type reply struct {
	code        int
	contentType string
	body        string
}

// post sends form to route?query with the given signature (and Host
// header, when set) and returns the answer.
func (h *hooks) post(route, query string, form url.Values, sig, host string) reply {
	h.t.Helper()
	target := h.srv.URL + route
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

// signedPost posts form signed as Twilio would for the public URL.
func (h *hooks) signedPost(route, query string, form url.Values) reply {
	h.t.Helper()
	return h.post(route, query, form, twilioSign(hookToken, signedURL(route, query), form), "")
}

func (h *hooks) outcomes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.observed...)
}

// snapshot dumps every table a webhook may change, to prove that a refused
// request changed nothing.
func (h *hooks) snapshot() string {
	h.t.Helper()
	db, err := sql.Open("sqlite", "file:"+h.path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, table := range []string{"deliveries", "delivery_events", "opt_outs", "inbound", "acks"} {
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY rowid")
		if err != nil {
			h.t.Fatalf("snapshot %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				h.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	return b.String()
}

// sentSMS plans one SMS delivery to phone (asking for acknowledgement
// when ack is set, about incident inc) and records it sent with sid, as
// the dispatcher would; it returns the delivery id.
func (h *hooks) sentSMS(key, subscriber, phone, inc, sid string, ack bool) int64 {
	h.t.Helper()
	ctx := context.Background()
	err := h.st.Write(ctx, func(tx *store.Tx) error {
		tr := &store.Trigger{Key: key, Kind: "incident", Name: "open", IncidentID: inc}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		if err := enq.Add(&store.NewDelivery{SubscriberID: subscriber, Channel: "clinician-sms", Kind: "sms", Address: phone, IncidentID: inc,
			Status: store.StatusQueued, Text: "Referrals are down in Wales. Reply ACK.", Segments: 1, Ack: ack}); err != nil {
			return err
		}
		return enq.Flush()
	})
	if err != nil {
		h.t.Fatal(err)
	}
	claimed, err := h.st.Claim(ctx, store.ClaimOptions{Channel: "clinician-sms", Limit: 10, Lease: time.Minute})
	if err != nil || len(claimed) != 1 {
		h.t.Fatalf("claim: %v, %d rows", err, len(claimed))
	}
	if err := h.st.Record(ctx, []store.Result{{ID: claimed[0].ID, Status: store.StatusSent, ProviderID: sid, Segments: 1, Detail: "queued"}}); err != nil {
		h.t.Fatal(err)
	}
	return claimed[0].ID
}

// logEntry reads one delivery as the delivery log shows it.
func (h *hooks) logEntry(id int64) store.LogEntry {
	h.t.Helper()
	var got store.LogEntry
	err := h.st.Log(context.Background(), store.LogFilter{}, func(e *store.LogEntry) error {
		if e.ID == id {
			got = *e
		}
		return nil
	})
	if err != nil || got.ID == 0 {
		h.t.Fatalf("log entry %d: %v", id, err)
	}
	return got
}

func statusForm(sid, status, code string) url.Values {
	f := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {"AC0123456789abcdef0123456789abcdef"},
		"From": {"+447400999000"}, "To": {"+447400123410"}, "MessageStatus": {status}, "SmsStatus": {status}, "ApiVersion": {"2010-04-01"}}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

// count counts a table's rows.
func count(t *testing.T, h *hooks, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+h.path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
