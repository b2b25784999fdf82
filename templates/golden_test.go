package templates

import (
	"flag"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// goldenCase is one sample rendered for a set of events and kinds, with
// its golden files under testdata/golden/<locale>/<dir>.
type goldenCase struct {
	dir    string // "" for the main sample
	sample func(locale string) Data
	events []string
	kinds  []channels.Kind
}

// goldenCases are the samples with golden files: the main sample for
// everything, the first briefing for every briefing kind, the main
// sample as the planner withholds it from SMS and Slack, the main
// sample asking for acknowledgement for every event that can ask, and an
// update and a resolution that restore a service in the recipient's nation.
func goldenCases() []goldenCase {
	return []goldenCase{
		{"", SampleDataFor, Events(), channels.Kinds},
		{"first", SampleFirstBriefing, []string{EventBriefing}, channels.Kinds},
		{"withheld", withheldSample, []string{EventAlert, EventUpdate, EventResolve, EventBriefing},
			[]channels.Kind{channels.KindSMS, channels.KindSlack}},
		{"ack", SampleAck, []string{EventAlert, EventUpdate, EventMessage}, channels.Kinds},
		{"restored", restoredSample, []string{EventUpdate, EventResolve}, channels.Kinds},
	}
}

// restoredSample is SampleDataFor(locale) for the update that restores
// patient referrals in Wales, seen by the clinician in Wales who was told
// they were down: what came back, and what is still out.
func restoredSample(locale string) Data {
	d := SampleDataFor(locale)
	referrals, text := "Patient referrals", "Referrals in Wales are working again. Emergency prescriptions remain on paper."
	if locale == "cy" {
		referrals, text = "Atgyfeiriadau cleifion", "Mae atgyfeiriadau yng Nghymru yn gweithio eto. Mae presgripsiynau brys yn dal ar bapur."
	}
	d.Impacts = slices.Clone(d.Impacts)
	for i := range d.Impacts {
		if d.Impacts[i].Service == referrals && d.Impacts[i].Nation == "wales" {
			d.Impacts[i].Status, d.Impacts[i].Workaround = "restored", ""
		}
	}
	d.ImpactChanges = []ImpactChange{{Service: referrals, Nation: "wales", From: "degraded", To: "restored"}}
	d.UpdateText = text
	d.Timeline = append(slices.Clone(d.Timeline), Entry{At: d.UpdatedAt, Status: d.Status, Text: text})
	return d
}

// withheldSample is SampleDataFor(locale) as the planner prepares it for a
// channel cleared only for OFFICIAL, when the latest update is
// OFFICIAL-SENSITIVE too: every sensitive text (the outage's summary,
// which its marking covers, and its sensitive entries) is replaced by the
// notice.
func withheldSample(locale string) Data {
	d := SampleDataFor(locale)
	notice := WithheldNotice(locale)
	withhold := func(in *Incident) {
		if in.Marking == "OFFICIAL-SENSITIVE" {
			in.Summary, in.Marking = notice, "OFFICIAL"
		}
		for _, list := range [][]Entry{in.Timeline, in.Changes} {
			for i := range list {
				if list[i].Marking == "OFFICIAL-SENSITIVE" || list[i].Text == in.UpdateText {
					list[i].Text, list[i].Marking = notice, ""
				}
			}
		}
		in.UpdateText = notice
	}
	d.Incidents = slices.Clone(d.Incidents)
	d.Incidents[0].Timeline = slices.Clone(d.Incidents[0].Timeline)
	d.Incidents[0].Changes = slices.Clone(d.Incidents[0].Changes)
	withhold(&d.Incidents[0])
	d.Summary, d.UpdateText, d.Timeline = d.Incidents[0].Summary, d.Incidents[0].UpdateText, d.Incidents[0].Timeline
	d.Marking, d.Withheld = "OFFICIAL", true
	return d
}

// TestSet_Render_Golden renders every golden case for every locale and
// compares each part with testdata/golden/<locale>/[<dir>/]<event>.<kind>.<part>.
// Every event × kind × locale must have a default. Run with -update to
// regenerate, then read the diff.
func TestSet_Render_Golden(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, gc := range goldenCases() {
		for _, locale := range Locales() {
			for _, event := range gc.events {
				for _, kind := range gc.kinds {
					name := path.Join(locale, gc.dir, event+"."+string(kind))
					t.Run(name, func(t *testing.T) {
						if !s.Has(event, kind, locale) {
							t.Fatalf("default %s/%s.%s is missing", locale, event, kind)
						}
						r, err := s.Render(event, kind, locale, gc.sample(locale))
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
							compareGolden(t, filepath.Join("testdata", "golden", locale, gc.dir, event+"."+string(kind)+"."+part), got+"\n")
						}
					})
				}
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

// TestSet_Render_SMSBudget pins the segment budgets of the SMS defaults
// rendered from the samples: alerts and the briefing in two segments in
// English; in Welsh the briefing in three and the alert in four. The
// Welsh alert sample is UCS-2 (the workaround's "ffôn") and already took
// 197 of the 201 units of three segments; "Y diweddariad nesaf erbyn
// 12:00." takes it to 229, and nothing else in it can go.
func TestSet_Render_SMSBudget(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, locale, event string
		sample              func(string) Data
		max                 int
	}{
		{"alert", "en", EventAlert, SampleDataFor, 2},
		{"alert", "cy", EventAlert, SampleDataFor, 4},
		{"briefing", "en", EventBriefing, SampleDataFor, 2},
		{"briefing", "cy", EventBriefing, SampleDataFor, 3},
		{"first briefing", "en", EventBriefing, SampleFirstBriefing, 2},
		{"first briefing", "cy", EventBriefing, SampleFirstBriefing, 3},
		{"withheld briefing", "en", EventBriefing, withheldSample, 2},
		{"withheld briefing", "cy", EventBriefing, withheldSample, 3},
		{"alert asking for acknowledgement", "en", EventAlert, SampleAck, 2},
		{"alert asking for acknowledgement", "cy", EventAlert, SampleAck, 4},
		{"update restoring a service", "en", EventUpdate, restoredSample, 2},
		{"update restoring a service", "cy", EventUpdate, restoredSample, 3},
		{"resolution", "en", EventResolve, restoredSample, 2},
		{"resolution", "cy", EventResolve, restoredSample, 2},
	}
	for _, tt := range tests {
		t.Run(tt.locale+"/"+tt.name, func(t *testing.T) {
			r, err := s.Render(tt.event, channels.KindSMS, tt.locale, tt.sample(tt.locale))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d segments, %s, %d characters", r.Segments, r.Encoding, len([]rune(r.Text)))
			if r.Segments > tt.max {
				t.Errorf("%d segments (%s, %d characters), want at most %d:\n%s",
					r.Segments, r.Encoding, len([]rune(r.Text)), tt.max, r.Text)
			}
			if strings.TrimSpace(r.Text) != r.Text || strings.Contains(r.Text, "\n\n\n") {
				t.Errorf("not normalised: %q", r.Text)
			}
		})
	}
}
