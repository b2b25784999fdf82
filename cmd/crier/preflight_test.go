package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/crier-dev/crier/dispatch"
)

// TestCLI_Preview_Summary is the pre-flight on the example: recipients by
// channel and language, who would not be told and why, a sample per
// channel × language, SMS segments and cost — and nothing written.
func TestCLI_Preview_Summary(t *testing.T) {
	h := exampleHarness(t)
	h.mustRun("incident", "open", "--title", "Helpline down", "--severity", "minor") // only the response team hears of a minor incident
	before := len(h.logRows())

	r := h.mustRun("preview", "--audience", "clinicians", "--channels", "clinician-sms", "--body", "Use paper prescriptions (WP10) until further notice.", "--summary", "--json")
	var pf dispatch.Preflight
	if err := json.Unmarshal([]byte(r.stdout), &pf); err != nil {
		t.Fatalf("preview --summary --json: %v\n%s", err, r.stdout)
	}
	sms := pf.Channels["clinician-sms"]
	if sms == nil || sms.Messages != 5 || sms.ByLocale["cy"] != 1 || sms.ByLocale["en"] != 4 {
		t.Fatalf("clinician-sms pre-flight %+v, want 5 messages (4 en, 1 cy)", sms)
	}
	if sms.Segments != pf.TotalSegments || pf.TotalSegments < 5 || pf.Currency != "GBP" || pf.EstimatedCost != float64(pf.TotalSegments)*0.04 {
		t.Fatalf("segments %d / %d, cost %.2f %s: want every segment priced at 0.04 GBP", sms.Segments, pf.TotalSegments, pf.EstimatedCost, pf.Currency)
	}
	if len(pf.Suppressed) != 1 || pf.Suppressed[0].Subscriber != "dr-brennan" || pf.Suppressed[0].Reason != "no_address" {
		t.Fatalf("suppressed %+v, want dr-brennan (no phone) with reason no_address", pf.Suppressed)
	}
	langs := map[string]bool{}
	for _, s := range pf.Samples {
		langs[s.Locale] = s.Text != ""
	}
	if !langs["en"] || !langs["cy"] {
		t.Fatalf("samples %+v, want one rendered sample in English and one in Welsh", pf.Samples)
	}

	r = h.mustRun("preview", "--briefing", "ministers-daily", "--summary")
	for _, want := range []string{"ministers-email", "official-scotland", "no_address", "sample: ministers-email"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("briefing pre-flight lacks %q:\n%s", want, r.stdout)
		}
	}
	if rows := h.logRows(); len(rows) != before {
		t.Fatalf("the pre-flights wrote %d deliveries, want none", len(rows)-before)
	}
}

// TestCLI_Serve_Preflight: the same pre-flight through the API.
func TestCLI_Serve_Preflight(t *testing.T) {
	h := serveHarness(t)
	s := startServe(t, h)
	code, _, body := s.call(t, "POST", "/api/v1/preflight", serveToken, `{"briefing":"ministers-daily"}`, nil)
	if code != 200 {
		t.Fatalf("POST /api/v1/preflight: %d %s", code, body)
	}
	var pf dispatch.Preflight
	if err := json.Unmarshal(body, &pf); err != nil {
		t.Fatal(err)
	}
	if c := pf.Channels["ministers-email"]; c == nil || c.Messages != 3 || len(pf.Suppressed) != 1 || len(pf.Samples) != 2 {
		t.Fatalf("pre-flight %+v (email %+v), want 3 emails (2 en, 1 cy samples) and official-scotland suppressed", pf, c)
	}
	for _, bad := range []string{`{}`, `{"briefing":"nope"}`, `{"incident":"INC-1","briefing":"ministers-daily"}`} {
		if code, _, body := s.call(t, "POST", "/api/v1/preflight", serveToken, bad, nil); code != 422 && code != 404 {
			t.Errorf("pre-flight %s: %d %s, want 422", bad, code, body)
		}
	}
	if code, _, _ := s.call(t, "POST", "/api/v1/preflight", "", `{"briefing":"ministers-daily"}`, nil); code != 401 {
		t.Errorf("pre-flight without a token: %d, want 401", code)
	}
}
