package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/internal/gcpolicy"
)

const serveToken = "serve-test-token-0123456789abcdef"

// serverRun is a `crier serve` running in a goroutine of the test.
type serverRun struct {
	base   string // http://127.0.0.1:port
	stderr *syncBuffer
	stop   context.CancelFunc
	code   chan int
}

var servingRE = regexp.MustCompile(`crier serving on (http://127\.0\.0\.1:\d+)`)

// startServe runs `crier serve --listen 127.0.0.1:0` and waits (bounded)
// until it prints the address it listens on.
func startServe(t testing.TB, h *harness) *serverRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serverRun{stderr: &syncBuffer{}, stop: cancel, code: make(chan int, 1)}
	var out syncBuffer
	e := h.env(&out, s.stderr)
	go func() { s.code <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--config", h.config}, e) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.code:
		case <-time.After(30 * time.Second):
			t.Error("crier serve did not stop within 30s of its context ending")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = m[1]
			return s
		}
		select {
		case code := <-s.code:
			t.Fatalf("crier serve exited %d before serving:\n%s", code, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("crier serve printed no address within 15s:\n%s", s.stderr.String())
		}
	}
}

// call makes one HTTP request to the server and returns status, headers and body.
func (s *serverRun) call(t *testing.T, method, path, token string, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// incidentCount is how many incidents (resolved too) the API lists.
func (s *serverRun) incidentCount(t *testing.T) int {
	t.Helper()
	code, _, body := s.call(t, "GET", "/api/v1/incidents?all=1", serveToken, "", nil)
	var list struct {
		Incidents []struct {
			ID string `json:"id"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/incidents: %d %v %s", code, err, body)
	}
	return len(list.Incidents)
}

type apiDelivery struct {
	ID         int64  `json:"id"`
	Kind       string `json:"kind"`
	Subscriber string `json:"subscriber"`
	Status     string `json:"status"`
	IncidentID string `json:"incident_id"`
}

// waitSent polls GET /api/v1/deliveries?incident=id until want deliveries
// of it are all sent, or fails after a deadline.
func (s *serverRun) waitSent(t *testing.T, incident string, want int) []apiDelivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []apiDelivery
	for time.Now().Before(deadline) {
		code, _, body := s.call(t, "GET", "/api/v1/deliveries?incident="+incident, serveToken, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET deliveries: %d %s", code, body)
		}
		var page struct {
			Deliveries []apiDelivery `json:"deliveries"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET deliveries: %v\n%s", err, body)
		}
		last = page.Deliveries
		sent := 0
		for _, d := range last {
			if d.Status == "sent" {
				sent++
			}
		}
		if len(last) == want && sent == want {
			return last
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not an assertion
	}
	t.Fatalf("deliveries of %s not all sent within 20s: %+v\nserver stderr:\n%s", incident, last, s.stderr.String())
	return nil
}

// serveHarness is the example config with one API token from the environment.
func serveHarness(t *testing.T) *harness {
	t.Helper()
	yaml := exampleYAML(t)
	const from = "  tokens: []\n"
	if !strings.Contains(yaml, from) {
		t.Fatalf("the example config no longer has %q under server:", from)
	}
	yaml = strings.Replace(yaml, from, "  tokens:\n    - name: test-desk\n      role: operator\n      token: ${CRIER_TEST_TOKEN}\n", 1)
	h := newHarness(t, yaml)
	h.setenv("CRIER_TEST_TOKEN", serveToken)
	return h
}

const openBody = `{"title":"111 clinical system down","severity":"critical",` +
	`"impacts":[{"service":"Referrals","nation":"wales","status":"outage","workaround":"phone the duty clinician"}]}`

// TestCLI_Serve_API drives a running `crier serve`: health, auth,
// an incident through the API delivered by the server, an idempotent
// replay, a strict body, a CLI incident left to the server, and a clean
// stop when the context ends.
func TestCLI_Serve_API(t *testing.T) {
	h := serveHarness(t)
	s := startServe(t, h)

	t.Run("healthz", func(t *testing.T) {
		if code, _, body := s.call(t, "GET", "/healthz", "", "", nil); code != http.StatusOK {
			t.Errorf("GET /healthz: %d %s", code, body)
		}
	})
	t.Run("no token", func(t *testing.T) {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/api/v1/deliveries", ""},
			{"GET", "/api/v1/incidents", ""},
			{"POST", "/api/v1/incidents", openBody},
		} {
			if code, _, body := s.call(t, c.method, c.path, "", c.body, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d %s, want 401", c.method, c.path, code, body)
			}
			if code, _, _ := s.call(t, c.method, c.path, "wrong-token-0123456789abcdef", c.body, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a wrong token: %d, want 401", c.method, c.path, code)
			}
		}
		if n := s.incidentCount(t); n != 0 {
			t.Errorf("requests without a valid token created %d incident(s)", n)
		}
	})

	var first []byte
	t.Run("open incident", func(t *testing.T) {
		code, _, body := s.call(t, "POST", "/api/v1/incidents", serveToken, openBody, map[string]string{"Idempotency-Key": "open-1"})
		if code != http.StatusCreated {
			t.Fatalf("POST /api/v1/incidents: %d %s", code, body)
		}
		first = body
		var res struct {
			Incident struct {
				ID string `json:"id"`
			} `json:"incident"`
		}
		if err := json.Unmarshal(body, &res); err != nil || res.Incident.ID != "INC-1" {
			t.Fatalf("POST answer: %v %s", err, body)
		}
		got := s.waitSent(t, "INC-1", 3)
		kinds := map[string]int{}
		for _, d := range got {
			kinds[d.Kind]++
		}
		if kinds["sms"] != 2 || kinds["slack"] != 1 {
			t.Errorf("deliveries by kind %v, want 2 sms (Welsh clinicians) and 1 slack", kinds)
		}
	})
	t.Run("idempotent replay", func(t *testing.T) {
		if first == nil {
			t.Fatal("the first POST failed, so there is nothing to replay")
		}
		code, hdr, body := s.call(t, "POST", "/api/v1/incidents", serveToken, openBody, map[string]string{"Idempotency-Key": "open-1"})
		if code != http.StatusCreated || !bytes.Equal(body, first) {
			t.Errorf("replay: %d %s\nwant 201 %s", code, body, first)
		}
		if hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay has no Idempotent-Replayed: true header")
		}
		if n := s.incidentCount(t); n != 1 {
			t.Errorf("%d incidents after a replayed POST, want 1", n)
		}
		s.waitSent(t, "INC-1", 3)
	})
	t.Run("unknown field", func(t *testing.T) {
		body := `{"title":"x","severity":"minor","colour":"red"}`
		code, _, resp := s.call(t, "POST", "/api/v1/incidents", serveToken, body, nil)
		if code != http.StatusBadRequest {
			t.Fatalf("unknown field: %d %s, want 400", code, resp)
		}
		var e struct {
			Error struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp, &e); err != nil || e.Error.Field != "colour" || !strings.Contains(e.Error.Message, "colour") {
			t.Errorf("unknown field answer does not name colour: %s", resp)
		}
	})
	t.Run("cli leaves delivery to the server", func(t *testing.T) {
		r := h.mustRun("incident", "open", "--title", "Ambulance dispatch link down", "--severity", "critical",
			"--impact", "Ambulance dispatch link@wales=outage:voice handover")
		if !strings.Contains(r.stdout, "INC-2") {
			t.Fatalf("CLI open did not create INC-2:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "crier serve") || !strings.Contains(r.stderr, "will deliver") {
			t.Errorf("CLI stderr does not say the server will deliver:\n%s", r.stderr)
		}
		if strings.Contains(r.stderr, "delivering:") {
			t.Errorf("the CLI delivered itself although a server runs:\n%s", r.stderr)
		}
		s.waitSent(t, "INC-2", 3)
	})

	s.stop()
	select {
	case code := <-s.code:
		if code != 0 {
			t.Errorf("serve returned %d after its context ended, want 0\n%s", code, s.stderr.String())
		}
		s.code <- code // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not return within 30s of its context ending")
	}
	assertNoPanic(t, result{args: []string{"serve"}, stderr: s.stderr.String()})
	assertNoSecrets(t, "serve stderr", s.stderr.String(), serveToken)
}

// TestServe_LogsGarbageCollectorSettings: what main applied to the
// collector (internal/gcpolicy) is in serve's start-up log, for an
// operator to see which defaults or environment values are in force.
func TestServe_LogsGarbageCollectorSettings(t *testing.T) {
	h := serveHarness(t)
	h.base.gc = gcpolicy.Settings{GCPercent: gcpolicy.GCPercent, GCFrom: "crier default", MemoryLimit: 1536 << 20, LimitFrom: "cgroup or system memory"}
	s := startServe(t, h)
	const want = `msg="garbage collector" settings="GOGC=400 (crier default), memory limit 1536 MiB (cgroup or system memory)"`
	if log := s.stderr.String(); !strings.Contains(log, want) {
		t.Errorf("serve's log lacks %s:\n%s", want, log)
	}
}
