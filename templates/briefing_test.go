package templates

import (
	"html"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
)

// briefingWords are the phrases of the briefing email that the tests look
// for, per locale.
var briefingWords = map[string]struct{ first, since, noChange, newFlag, htmlNewFlag string }{
	"en": {"This is your first briefing: the full picture follows.", "Changes since your last briefing at Monday 15 June 2026, 08:00 BST.",
		"No change since your last briefing.", "NEW: ", ">New</strong> "},
	"cy": {"Dyma'ch briff cyntaf: mae'r darlun llawn isod.", "Newidiadau ers eich briff diwethaf (Dydd Llun 15 Mehefin 2026, 08:00 BST).",
		"Dim newid ers eich briff diwethaf.", "NEWYDD: ", ">Newydd</strong> "},
}

// TestSet_Render_BriefingChanges checks what each briefing email lists: a
// first briefing says so and lists every timeline entry of every active
// incident; a later one lists only the entries in Changes (and says when
// there are none).
func TestSet_Render_BriefingChanges(t *testing.T) {
	s := mustLoad(t, "")
	noChange := func(locale string) Data {
		d := SampleDataFor(locale)
		d.Incidents[0].Changes, d.Incidents[0].ImpactChanges = nil, nil
		return d
	}
	tests := []struct {
		name   string
		sample func(string) Data
		first  bool
	}{
		{"first", SampleFirstBriefing, true},
		{"since previous", SampleDataFor, false},
		{"no change", noChange, false},
	}
	for _, locale := range Locales() {
		w := briefingWords[locale]
		for _, tt := range tests {
			t.Run(locale+"/"+tt.name, func(t *testing.T) {
				d := tt.sample(locale)
				r, err := s.Render(EventBriefing, channels.KindEmail, locale, d)
				if err != nil {
					t.Fatal(err)
				}
				// Template phrases are compared as they are; data (entry
				// texts, titles) is escaped for the HTML part.
				var phrases, notPhrases, want, notWant []string
				if tt.first {
					phrases, notPhrases = []string{w.first}, []string{w.since, w.noChange, w.newFlag, w.htmlNewFlag}
				} else {
					phrases, notPhrases = []string{w.since}, []string{w.first}
				}
				for _, in := range d.Incidents {
					listed := in.Changes
					if tt.first {
						listed = in.Timeline
					}
					for _, e := range in.Timeline {
						if containsEntry(listed, e) {
							want = append(want, e.Text)
						} else {
							notWant = append(notWant, e.Text)
						}
					}
					if !tt.first && !in.New && len(in.Changes) == 0 && len(in.ImpactChanges) == 0 {
						phrases = append(phrases, w.noChange)
					}
				}
				check := func(part, got string, esc func(string) string, newFlag string) {
					t.Helper()
					if !tt.first && !strings.Contains(got, newFlag+esc(d.Incidents[1].Title)) {
						t.Errorf("%s does not flag %q as new", part, d.Incidents[1].Title)
					}
					for _, s := range phrases {
						if !strings.Contains(got, s) {
							t.Errorf("%s lacks %q", part, s)
						}
					}
					for _, s := range notPhrases {
						if strings.Contains(got, s) {
							t.Errorf("%s has %q", part, s)
						}
					}
					for _, s := range want {
						if !strings.Contains(got, esc(s)) {
							t.Errorf("%s lacks %q", part, s)
						}
					}
					for _, s := range notWant {
						if strings.Contains(got, esc(s)) {
							t.Errorf("%s has %q", part, s)
						}
					}
				}
				check("text", r.Text, func(s string) string { return s }, w.newFlag)
				check("html", r.HTML, html.EscapeString, w.htmlNewFlag)
			})
		}
	}
}

func containsEntry(list []Entry, e Entry) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// TestSet_Render_BriefingResolved checks that a resolved incident is
// listed once and counted once whether the planner put it in Resolved, in
// Incidents (as it did before Resolved existed), or in both.
func TestSet_Render_BriefingResolved(t *testing.T) {
	s := mustLoad(t, "")
	tests := []struct {
		name  string
		shape func(d *Data)
	}{
		{"in Resolved", func(d *Data) {}},
		{"in Incidents", func(d *Data) { d.Incidents, d.Resolved = append(d.Incidents, d.Resolved...), nil }},
		{"in both", func(d *Data) { d.Incidents = append(d.Incidents, d.Resolved...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := SampleData()
			title := d.Resolved[0].Title
			tt.shape(&d)
			for _, kind := range channels.Kinds {
				r, err := s.Render(EventBriefing, kind, "en", d)
				if err != nil {
					t.Fatal(err)
				}
				if kind == channels.KindSMS {
					if !strings.HasPrefix(r.Text, "Situation report 08:00: 2 active incidents, 1 resolved.") {
						t.Errorf("sms counts wrong:\n%s", r.Text)
					}
					continue
				}
				if n := strings.Count(r.Text, title); n != 1 {
					t.Errorf("%s text names %q %d times, want once:\n%s", kind, title, n, r.Text)
				}
				if kind == channels.KindEmail && r.Subject != "OFFICIAL-SENSITIVE: Situation report 08:00 — 2 active, 1 resolved" {
					t.Errorf("subject = %q", r.Subject)
				}
			}
		})
	}
}

// TestSet_Render_Marking checks the protective marking: every email has it
// first and last in the text and twice in the HTML, a marking above
// OFFICIAL is also in the subject, and no SMS or Slack message built from
// withheld data carries a marking at all.
func TestSet_Render_Marking(t *testing.T) {
	s := mustLoad(t, "")
	banner := map[string]map[string]string{
		"en": {"OFFICIAL": "OFFICIAL", "OFFICIAL-SENSITIVE": "OFFICIAL-SENSITIVE"},
		"cy": {"OFFICIAL": "SWYDDOGOL / OFFICIAL", "OFFICIAL-SENSITIVE": "SWYDDOGOL-SENSITIF / OFFICIAL-SENSITIVE"},
	}
	for _, locale := range Locales() {
		for _, marking := range []string{"OFFICIAL-SENSITIVE", "OFFICIAL", ""} {
			for _, event := range Events() {
				t.Run(locale+"/"+event+"/"+marking, func(t *testing.T) {
					d := SampleDataFor(locale)
					d.Marking = marking
					r, err := s.Render(event, channels.KindEmail, locale, d)
					if err != nil {
						t.Fatal(err)
					}
					want := banner[locale][marking]
					if marking == "" {
						if strings.HasPrefix(r.Text, "OFFICIAL") || strings.HasPrefix(r.Text, "SWYDDOGOL") || strings.Count(r.HTML, "letter-spacing:1px") != 0 {
							t.Errorf("unmarked message has a banner:\n%s", r.Text)
						}
					} else {
						if !strings.HasPrefix(r.Text, want+"\n\n") || !strings.HasSuffix(r.Text, "\n\n"+want) {
							t.Errorf("text does not start and end with %q:\n%s", want, r.Text)
						}
						if n := strings.Count(r.HTML, ">"+want+"</p>"); n != 2 {
							t.Errorf("html has the %q banner %d times, want 2", want, n)
						}
					}
					if gotPrefix, wantPrefix := strings.HasPrefix(r.Subject, want+": "), marking == "OFFICIAL-SENSITIVE"; gotPrefix != wantPrefix {
						t.Errorf("subject %q: marked = %v, want %v", r.Subject, gotPrefix, wantPrefix)
					}
				})
			}
		}
		for _, event := range Events() {
			for _, kind := range []channels.Kind{channels.KindSMS, channels.KindSlack} {
				r, err := s.Render(event, kind, locale, withheldSample(locale))
				if err != nil {
					t.Fatal(err)
				}
				if all := r.Subject + r.Text; strings.Contains(all, "OFFICIAL") || strings.Contains(all, "SWYDDOGOL") {
					t.Errorf("%s/%s.%s prints a marking:\n%s", locale, event, kind, all)
				}
			}
		}
	}
}

// TestSet_Render_NextUpdate checks that alert, update and resolve say
// when the next update is due on every channel, only when one is set, and
// that SMS uses the short time when it has one.
func TestSet_Render_NextUpdate(t *testing.T) {
	s := mustLoad(t, "")
	phrase := map[string]string{"en": "next update by", "cy": "diweddariad nesaf"}
	for _, locale := range Locales() {
		for _, event := range []string{EventAlert, EventUpdate, EventResolve} {
			for _, kind := range channels.Kinds {
				t.Run(locale+"/"+event+"."+string(kind), func(t *testing.T) {
					set := SampleDataFor(locale)
					unset := SampleDataFor(locale)
					unset.NextUpdate, unset.NextUpdateAt = "", time.Time{}
					longOnly := SampleDataFor(locale)
					longOnly.NextUpdateAt = time.Time{}
					for _, c := range []struct {
						name string
						d    Data
						want bool
						also string
					}{
						{"set", set, true, ""},
						{"unset", unset, false, ""},
						{"formatted only", longOnly, true, set.NextUpdate},
					} {
						r, err := s.Render(event, kind, locale, c.d)
						if err != nil {
							t.Fatal(err)
						}
						if got := strings.Contains(strings.ToLower(r.Text+r.HTML), phrase[locale]); got != c.want {
							t.Errorf("%s: says next update = %v, want %v:\n%s", c.name, got, c.want, r.Text)
						}
						if c.also != "" && !strings.Contains(r.Text, c.also) {
							t.Errorf("%s: lacks %q:\n%s", c.name, c.also, r.Text)
						}
						if c.name == "set" && kind == channels.KindSMS && !strings.Contains(r.Text, " 12:00.") {
							t.Errorf("sms lacks the short time 12:00:\n%s", r.Text)
						}
					}
				})
			}
		}
	}
}

// TestSet_Render_BriefingSMSNoDisruption checks the briefing SMS when
// nothing is disrupted where the recipient is.
func TestSet_Render_BriefingSMSNoDisruption(t *testing.T) {
	s := mustLoad(t, "")
	tests := []struct {
		locale  string
		nations []string
		want    string
	}{
		{"en", []string{"wales"}, "\nWales: no services disrupted.\n"},
		{"en", []string{"wales", "scotland"}, "\nWales, Scotland: no services disrupted.\n"},
		{"en", nil, "\nNo services disrupted.\n"},
		{"cy", []string{"wales"}, "\nCymru: dim tarfu ar wasanaethau.\n"},
		{"cy", nil, "\nDim tarfu ar wasanaethau.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.locale+"/"+strings.Join(tt.nations, ","), func(t *testing.T) {
			d := SampleDataFor(tt.locale)
			d.RecipientNations = tt.nations
			for i := range d.Incidents {
				d.Incidents[i].Impacts = []Impact{{Service: "NHSmail", Nation: "wales", Status: "restored"}}
			}
			r, err := s.Render(EventBriefing, channels.KindSMS, tt.locale, d)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.Text, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, r.Text)
			}
		})
	}
}

func TestWithheldNotice_Locales(t *testing.T) {
	const en = "Sensitive details have been withheld from this channel. A full briefing has been sent by email."
	if got := WithheldNotice("en"); got != en {
		t.Errorf("WithheldNotice(en) = %q", got)
	}
	if got := WithheldNotice("cy"); got == "" || got == en || !strings.Contains(got, "e-bost") {
		t.Errorf("WithheldNotice(cy) = %q, want a Welsh sentence", got)
	}
	if got := WithheldNotice("xx"); got != en {
		t.Errorf("WithheldNotice(xx) = %q, want the English one", got)
	}
}

func TestSMSPointer_Locales(t *testing.T) {
	if got := SMSPointer("en"); got != " … full details by email" {
		t.Errorf("SMSPointer(en) = %q", got)
	}
	if got := SMSPointer("xx"); got != SMSPointer("en") {
		t.Errorf("SMSPointer(xx) = %q, want the English one", got)
	}
	long := strings.Repeat("Defnyddiwch bresgripsiynau papur nes clywch yn wahanol. ", 10)
	for _, locale := range Locales() {
		p := SMSPointer(locale)
		if !strings.HasPrefix(p, " ") || strings.TrimSpace(p) == "" {
			t.Errorf("SMSPointer(%s) = %q, want a leading space and words", locale, p)
		}
		if enc := SMSEncoding(NormalizeSMS(p)); enc != GSM7 {
			t.Errorf("SMSPointer(%s) is %s after normalising, want GSM-7", locale, enc)
		}
		got := FitSMS(long, 2, p)
		if enc, n := SMSSegments(got); enc != GSM7 || n > 2 || !strings.HasSuffix(got, NormalizeSMS(p)) {
			t.Errorf("FitSMS with the %s pointer: %s, %d segments: %q", locale, enc, n, got)
		}
	}
	if SMSPointer("cy") == SMSPointer("en") {
		t.Error("the Welsh pointer is the English one")
	}
}

func TestUnion_KeepsOrderDropsRepeats(t *testing.T) {
	a := []Incident{{IncidentID: "A"}, {IncidentID: "B"}}
	b := []Incident{{IncidentID: "B"}, {IncidentID: "C"}, {}, {}}
	var ids []string
	for _, in := range union(a, b) {
		ids = append(ids, in.IncidentID)
	}
	if got := strings.Join(ids, ","); got != "A,B,C,," {
		t.Errorf("union = %q, want A,B,C and both id-less incidents", got)
	}
}
