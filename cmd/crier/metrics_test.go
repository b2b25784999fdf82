package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/metrics/metricstest"
	"github.com/crier-dev/crier/store"
)

// metricsYAML is a small installation on sandbox channels: seven staff on
// SMS and email, one SMS address configured to fail, one person without a
// phone and one who opted out of SMS, and a 09:00 briefing on a channel of
// its own.
const metricsYAML = `
store:
  path: crier.db
server:
  public_url: http://127.0.0.1:8080
  tokens:
    - name: test-desk
      role: operator
      token: ${CRIER_TEST_TOKEN}
log:
  format: json
  level: debug
schedule:
  grace: 2h
channels:
  staff-sms:
    driver: sandbox
    sandbox:
      kind: sms
      fail_addresses: ["+447400900003"]
  staff-email:
    driver: sandbox
    sandbox:
      kind: email
  board-email:
    driver: sandbox
    sandbox:
      kind: email
subscribers:
  inline:
    - {id: s1, name: Staff One, roles: [staff], phone: "+447400900001", email: s1@staff.example.org}
    - {id: s2, name: Staff Two, roles: [staff], phone: "+447400900002", email: s2@staff.example.org}
    - {id: s3, name: Staff Three, roles: [staff], phone: "+447400900003", email: s3@staff.example.org}
    - {id: s4, name: Staff Four, roles: [staff], phone: "+447400900004", email: s4@staff.example.org}
    - {id: s5, name: Staff Five, roles: [staff], phone: "+447400900005", email: s5@staff.example.org}
    - {id: s6, name: Staff Six, roles: [staff], email: s6@staff.example.org}
    - {id: s7, name: Staff Seven, roles: [staff], phone: "+447400900007", email: s7@staff.example.org, opted_out: [sms]}
    - {id: chair, name: Board Chair, roles: [board], email: chair@board.example.org}
audiences:
  staff:
    roles: [staff]
  board:
    roles: [board]
briefings:
  board-morning:
    title: Board morning report
    schedule: "0 9 * * *"
    audience: board
    channels: [board-email]
    template: briefing
alerts:
  staff:
    on: [open]
    audience: staff
    channels: [staff-sms, staff-email]
`

// metricsPhones and metricsEmails are every address in metricsYAML: none
// may appear whole in a log line.
var (
	metricsPhones = []string{"+447400900001", "+447400900002", "+447400900003", "+447400900004", "+447400900005", "+447400900007"}
	metricsEmails = []string{"s1@staff.example.org", "s2@staff.example.org", "s3@staff.example.org", "s4@staff.example.org",
		"s5@staff.example.org", "s6@staff.example.org", "s7@staff.example.org", "chair@board.example.org"}
)

func (s *serverRun) scrape(t *testing.T) metricstest.Samples {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := metricstest.Scrape(ctx, &http.Client{}, s.base+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFinal polls the delivery log of trigger until it has want rows and
// none is queued or sending, or fails after a deadline.
func waitFinal(t *testing.T, h *harness, trigger string, want int) []logRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := h.logRows("--trigger", trigger)
		pending := 0
		for _, r := range rows {
			if r.Status == "queued" || r.Status == "sending" {
				pending++
			}
		}
		if len(rows) == want && pending == 0 {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("trigger %s: %d rows, %d pending after 20s, want %d final rows", trigger, len(rows), pending, want)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not an assertion
	}
}

// TestCLI_Serve_MetricsAfterBroadcast is issue 6's must-show 3: a real
// crier serve, scraped over HTTP before and after a broadcast (POST
// /api/v1/broadcasts) to seven staff over SMS and email; every counter
// moves by exactly what the delivery log says happened, and the
// suppressions by what the broadcast's pre-flight announced.
func TestCLI_Serve_MetricsAfterBroadcast(t *testing.T) {
	h := newHarness(t, metricsYAML)
	h.setenv("CRIER_TEST_TOKEN", serveToken)
	// Yesterday's 09:00 briefing ran on time; today's was missed while crier
	// was down, so start-up (at 10:00) catches it up an hour late.
	st, err := store.Open(context.Background(), filepath.Join(h.dir, "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	if _, err := st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "board-morning", DueAt: yesterday, FiredAt: yesterday.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, h)
	L := metricstest.L

	before := s.scrape(t)
	for _, ch := range []string{"staff-sms", "staff-email"} {
		if !before.Has("crier_deliveries_total", L("channel", ch, "status", "sent")) {
			t.Errorf("before any send, crier_deliveries_total{channel=%q,status=sent} is absent; want it at 0", ch)
		}
		if got := before.Sum("crier_queue_depth", L("channel", ch)); got != 0 {
			t.Errorf("before: crier_queue_depth{channel=%q} = %v, want 0", ch, got)
		}
	}

	body := `{"audience":"staff","channels":["staff-sms","staff-email"],"subject":"Rota system down",` +
		`"body":"The rota system is down: check your shifts with your ward manager.","key":"metrics-1"}`
	code, _, resp := s.call(t, "POST", "/api/v1/broadcasts", serveToken, body, nil)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/broadcasts: %d %s", code, resp)
	}
	var planned struct {
		Trigger    string `json:"trigger"`
		Queued     int    `json:"queued"`
		Suppressed int    `json:"suppressed"`
		Preflight  struct {
			Suppressed []struct {
				Channel string `json:"channel"`
				Reason  string `json:"reason"`
			} `json:"suppressed"`
		} `json:"preflight"`
	}
	if err := json.Unmarshal(resp, &planned); err != nil || planned.Trigger == "" {
		t.Fatalf("broadcast answer: %v %s", err, resp)
	}
	if planned.Queued != 12 || planned.Suppressed != 2 || len(planned.Preflight.Suppressed) != 2 {
		t.Fatalf("broadcast planned %d queued, %d suppressed (pre-flight: %+v), want 12 and 2", planned.Queued, planned.Suppressed, planned.Preflight.Suppressed)
	}
	rows := waitFinal(t, h, planned.Trigger, 14)
	byOutcome := countBy(rows, func(r logRow) string { return r.Channel + "/" + r.Status + "/" + r.Reason })
	wantLog := map[string]int{
		"staff-sms/sent/": 4, "staff-sms/failed/bad_address": 1, "staff-sms/suppressed/no_address": 1, "staff-sms/suppressed/opted_out": 1,
		"staff-email/sent/": 7,
	}
	if len(byOutcome) != len(wantLog) {
		t.Errorf("delivery log by outcome %v, want %v", byOutcome, wantLog)
	}
	for k, n := range wantLog {
		if byOutcome[k] != n {
			t.Errorf("delivery log %s: %d rows, want %d (all: %v)", k, byOutcome[k], n, byOutcome)
		}
	}

	after := s.scrape(t)
	delta := func(name string, labels map[string]string) float64 {
		return after.Sum(name, labels) - before.Sum(name, labels)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"crier_deliveries_total", L("channel", "staff-sms", "kind", "sms", "status", "sent", "reason", ""), 4},
		{"crier_deliveries_total", L("channel", "staff-sms", "kind", "sms", "status", "failed", "reason", "bad_address"), 1},
		{"crier_deliveries_total", L("channel", "staff-sms", "kind", "sms", "status", "suppressed", "reason", "no_address"), 1},
		{"crier_deliveries_total", L("channel", "staff-sms", "kind", "sms", "status", "suppressed", "reason", "opted_out"), 1},
		{"crier_deliveries_total", L("channel", "staff-sms"), 7},
		{"crier_deliveries_total", L("channel", "staff-email", "kind", "email", "status", "sent", "reason", ""), 7},
		{"crier_deliveries_total", L("channel", "staff-email"), 7},
		{"crier_provider_errors_total", L("channel", "staff-sms", "reason", "bad_address"), 1},
		{"crier_provider_errors_total", L("channel", "staff-sms"), 1},
		{"crier_provider_errors_total", L("channel", "staff-email"), 0},
		// One observation per call to the provider: suppressed rows never got one.
		{"crier_send_duration_seconds_count", L("channel", "staff-sms"), 5},
		{"crier_send_duration_seconds_count", L("channel", "staff-email"), 7},
		{"crier_send_duration_seconds_bucket", L("channel", "staff-sms", "le", "+Inf"), 5},
	} {
		if got := delta(c.name, c.labels); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Suppressed exactly as the pre-flight said it would be.
	for _, p := range planned.Preflight.Suppressed {
		n := 0
		for _, q := range planned.Preflight.Suppressed {
			if q == p {
				n++
			}
		}
		labels := L("channel", p.Channel, "status", "suppressed", "reason", p.Reason)
		if got := delta("crier_deliveries_total", labels); got != float64(n) {
			t.Errorf("crier_deliveries_total%v moved by %v; the pre-flight suppressed %d", labels, got, n)
		}
	}
	for _, ch := range []string{"staff-sms", "staff-email", "board-email"} {
		if got := after.Sum("crier_queue_depth", L("channel", ch)); got != 0 || !after.Has("crier_queue_depth", L("channel", ch)) {
			t.Errorf("after: crier_queue_depth{channel=%q} = %v (present %v), want 0", ch, got, after.Has("crier_queue_depth", L("channel", ch)))
		}
		if got := after.Sum("crier_queue_oldest_age_seconds", L("channel", ch)); got != 0 {
			t.Errorf("after: crier_queue_oldest_age_seconds{channel=%q} = %v, want 0", ch, got)
		}
	}
	// Start-up caught up the 09:00 briefing at 10:00.
	if got := after.Sum("crier_schedule_lag_seconds", L("briefing", "board-morning")); got != 3600 {
		t.Errorf("crier_schedule_lag_seconds{briefing=board-morning} = %v, want 3600", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !after.Has(name, nil) {
			t.Errorf("%s is not served", name)
		}
	}

	t.Run("delivery logs mask addresses", func(t *testing.T) {
		logs := s.stderr.String()
		if !strings.Contains(logs, "delivery failed permanently") {
			t.Fatalf("the server logged no failed delivery; the check below would prove nothing:\n%s", logs)
		}
		assertNoAddresses(t, "crier serve's log", logs, append(metricsPhones, metricsEmails...))
	})
}

// TestCLI_Serve_Readyz: ready once the scheduler and the dispatcher run,
// answered without a token, like /metrics.
func TestCLI_Serve_Readyz(t *testing.T) {
	h := newHarness(t, metricsYAML)
	h.setenv("CRIER_TEST_TOKEN", serveToken)
	s := startServe(t, h)
	// The dispatcher's goroutine may start a moment after the server
	// prints its address: wait (bounded) for ready.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body := s.call(t, "GET", "/readyz", "", "", nil)
		if code == http.StatusOK {
			if lines := strings.Split(strings.TrimSpace(string(body)), "\n"); lines[0] != "ready" || len(lines) != 2 ||
				!strings.HasPrefix(lines[1], "scheduler: this process") {
				t.Errorf("/readyz body %q, want ready, and that this process runs the scheduler", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 10s: %s", code, body)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not an assertion
	}
	if code, hdr, _ := s.call(t, "GET", "/metrics", "", "", nil); code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics without a token: %d %s, want 200 text/plain", code, hdr.Get("Content-Type"))
	}
}

var (
	phoneRE = regexp.MustCompile(`\+?[0-9][0-9 ]{8,}[0-9]`)
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
)

// assertNoAddresses fails if any of addrs, or anything shaped like a full
// phone number or email address, is in text. JSON log lines are decoded
// first so an escaped "+" cannot hide a number.
func assertNoAddresses(t *testing.T, where, text string, addrs []string) {
	t.Helper()
	for n, line := range strings.Split(text, "\n") {
		plain := line
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			b, _ := json.Marshal(m)
			plain = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
		}
		for _, a := range addrs {
			if strings.Contains(plain, a) {
				t.Errorf("%s line %d has the full address %q: %s", where, n+1, a, line)
			}
		}
		if f := phoneRE.FindString(plain); f != "" && !strings.Contains(f, "*") {
			if digits := strings.Count(f, "") - 1 - strings.Count(f, " "); digits >= 10 && looksLikePhone(f) {
				t.Errorf("%s line %d has what looks like a phone number %q: %s", where, n+1, f, line)
			}
		}
		if f := emailRE.FindString(plain); f != "" && !strings.Contains(f, "***@") {
			t.Errorf("%s line %d has what looks like an email address %q: %s", where, n+1, f, line)
		}
	}
}

// looksLikePhone keeps timestamps and ids out of the phone check: a phone
// number here starts with + or 0.
func looksLikePhone(s string) bool { return strings.HasPrefix(s, "+") || strings.HasPrefix(s, "0") }
