package templates

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// TestSet_Render_Golden renders every default event × kind × locale from
// SampleDataFor(locale) and compares each part with
// testdata/golden/<locale>/<event>.<kind>.<part>. Run with -update to
// regenerate, then read the diff.
func TestSet_Render_Golden(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, locale := range Locales() {
		for _, event := range Events() {
			for _, kind := range channels.Kinds {
				if event == EventBriefing && kind == channels.KindSMS {
					// No default by design: a situation report does not fit
					// an SMS, and ministers' briefings may be sensitive.
					if s.Has(event, kind, locale) {
						t.Errorf("%s/briefing.sms has a default; add its golden file", locale)
					}
					continue
				}
				name := locale + "/" + event + "." + string(kind)
				t.Run(name, func(t *testing.T) {
					if !s.Has(event, kind, locale) {
						t.Fatalf("default %s is missing", name)
					}
					r, err := s.Render(event, kind, locale, SampleDataFor(locale))
					if err != nil {
						t.Fatal(err)
					}
					parts := map[string]string{PartText: r.Text}
					switch kind {
					case channels.KindEmail:
						parts[PartSubject], parts[PartHTML] = r.Subject, r.HTML
					case channels.KindSlack:
						parts[PartSubject] = r.Subject
					}
					for part, got := range parts {
						if got == "" {
							continue // an optional part the defaults leave out
						}
						compareGolden(t, filepath.Join("testdata", "golden", locale, event+"."+string(kind)+"."+part), got+"\n")
					}
				})
			}
		}
	}
}

// compareGolden checks got against the file, or writes it with -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./templates -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestSet_Render_AlertSMSBudget pins the segment budgets for clinician
// alerts rendered from the sample: two segments in English, three in Welsh
// (the Welsh sample contains ô, so it is UCS-2).
func TestSet_Render_AlertSMSBudget(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		locale, event string
		max           int
	}{
		{"en", EventAlert, 2},
		{"cy", EventAlert, 3},
	}
	for _, tt := range tests {
		r, err := s.Render(tt.event, channels.KindSMS, tt.locale, SampleDataFor(tt.locale))
		if err != nil {
			t.Fatal(err)
		}
		if r.Segments > tt.max {
			t.Errorf("%s/%s.sms.text: %d segments (%s, %d characters), want at most %d:\n%s",
				tt.locale, tt.event, r.Segments, r.Encoding, len([]rune(r.Text)), tt.max, r.Text)
		}
		if strings.TrimSpace(r.Text) != r.Text || strings.Contains(r.Text, "\n\n\n") {
			t.Errorf("%s/%s.sms.text is not normalised: %q", tt.locale, tt.event, r.Text)
		}
	}
}
