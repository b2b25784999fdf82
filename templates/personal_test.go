package templates

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/crier-dev/crier/channels"
)

// otherRecipient returns d as it would be for a different recipient in
// the same locale, zone and nations group: their own id and name, and
// their own acknowledgement link when d carries one.
func otherRecipient(d Data, id, name string) Data {
	d.RecipientID, d.RecipientName = id, name
	if d.AckURL != "" {
		d.AckURL = "https://crier.example.org/ack/other-" + url.PathEscape(id)
	}
	return d
}

// printsAckLink says which defaults print the acknowledgement link: the
// email of every event that can ask for acknowledgement.
func printsAckLink(event string, kind channels.Kind) bool {
	return kind == channels.KindEmail && (event == EventAlert || event == EventUpdate || event == EventMessage)
}

// recipientPairs are the (id, name) pairs the property tests render with:
// plain, and with characters that Slack and HTML escape.
func recipientPairs() [][2]string {
	return [][2]string{
		{"sub-0001", "Mr Huw Jones"},
		{"sub-<9>", `Ms "A&B" <O'Brien>`},
		{"", ""},
	}
}

func TestSet_Personal_Defaults(t *testing.T) {
	// No default names its recipient: the delivery log records who got
	// each message, and an identical body for everyone in a group is stored
	// once and rendered once however large the broadcast. Only the emails
	// that carry a recipient's own acknowledgement link are personal, and
	// only when there is a link.
	s := mustLoad(t, "")
	n := 0
	for _, locale := range Locales() {
		for _, event := range Events() {
			for _, kind := range channels.Kinds {
				if !s.Has(event, kind, locale) {
					continue
				}
				n++
				got, why := s.personalWhy(event, kind, locale)
				t.Logf("%s/%s.%s personal=%v %s", locale, event, kind, got, why)
				if want := printsAckLink(event, kind); got != want {
					t.Errorf("%s/%s.%s: Personal = %v (%s), want %v", locale, event, kind, got, why, want)
				}
				if s.Personal(event, kind, locale) != got {
					t.Errorf("%s/%s.%s: Personal disagrees with personalWhy", locale, event, kind)
				}
				if s.PersonalWithoutAckURL(event, kind, locale) {
					t.Errorf("%s/%s.%s: PersonalWithoutAckURL = true, want false", locale, event, kind)
				}
			}
		}
	}
	if n != 2*5*3 { // every event × kind in both locales
		t.Errorf("checked %d defaults, want 30", n)
	}
}

// TestSet_Personal_DefaultsRenderSame is the property Personal promises:
// a default that is not personal renders byte-identically for recipients
// who differ only in RecipientID and RecipientName (and AckURL, when the
// sample carries links). The personal defaults must differ, or the
// analysis would be crying wolf on them. Samples without a link are held
// to PersonalWithoutAckURL.
func TestSet_Personal_DefaultsRenderSame(t *testing.T) {
	s := mustLoad(t, "")
	for _, locale := range Locales() {
		for _, event := range Events() {
			for _, kind := range channels.Kinds {
				if !s.Has(event, kind, locale) {
					continue
				}
				// Every sample, so that the first-briefing, withheld and
				// acknowledgement branches are covered too.
				for _, sample := range []func(string) Data{SampleDataFor, SampleFirstBriefing, withheldSample, SampleAck} {
					base := sample(locale)
					personal := s.PersonalWithoutAckURL(event, kind, locale)
					if base.AckURL != "" {
						personal = s.Personal(event, kind, locale)
					}
					base.Event = event
					ref, err := s.Render(event, kind, locale, base)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range recipientPairs() {
						got, err := s.Render(event, kind, locale, otherRecipient(base, p[0], p[1]))
						if err != nil {
							t.Fatal(err)
						}
						if same := got == ref; same == personal {
							t.Errorf("%s/%s.%s: Personal = %v but rendering for %q/%q is same=%v", locale, event, kind, personal, p[0], p[1], same)
						}
					}
				}
			}
		}
	}
}

// personalCases are override files for en with the answer Personal must
// give for alert × kind.
func personalCases() []struct {
	name string
	kind channels.Kind
	src  string
	want bool
} {
	return []struct {
		name string
		kind channels.Kind
		src  string
		want bool
	}{
		{"direct name", channels.KindSMS, `{{define "alert.sms.text"}}Dear {{.RecipientName}}: {{.Title}}{{end}}`, true},
		{"direct id", channels.KindSMS, `{{define "alert.sms.text"}}{{.Title}} ref {{.RecipientID}}{{end}}`, true},
		{"name only tested", channels.KindSMS, `{{define "alert.sms.text"}}{{if .RecipientName}}Hello. {{end}}{{.Title}}{{end}}`, true},
		{"via partial", channels.KindSMS, `{{define "_sig"}}-- for {{.RecipientName}}{{end}}
{{define "alert.sms.text"}}{{.Title}} {{template "_sig" .}}{{end}}`, true},
		{"via two partials", channels.KindSMS, `{{define "_outer"}}{{.Title}}{{template "_inner" $}}{{end}}
{{define "_inner"}}{{with .}}{{.RecipientID}}{{end}}{{end}}
{{define "alert.sms.text"}}{{template "_outer" .}}{{end}}`, true},
		{"partial via and", channels.KindSMS, `{{define "_sig"}}{{.RecipientName}}{{end}}
{{define "alert.sms.text"}}{{.Title}}{{template "_sig" (and true .)}}{{end}}`, true},
		{"dollar in range", channels.KindSMS, `{{define "alert.sms.text"}}{{range .Impacts}}{{.Service}} for {{$.RecipientID}}
{{end}}{{end}}`, true},
		{"with dollar in range", channels.KindSMS, `{{define "alert.sms.text"}}{{range .Impacts}}{{with $}}{{.RecipientName}}{{end}}{{end}}{{end}}`, true},
		{"variable holding data", channels.KindSMS, `{{define "alert.sms.text"}}{{$d := .}}{{range .Impacts}}{{$d.RecipientName}}{{end}}{{end}}`, true},
		{"assigned in a later iteration", channels.KindSMS, `{{define "alert.sms.text"}}{{$x := .Title}}{{range .Impacts}}{{printf "%v" $x}}{{$x = $}}{{end}}{{end}}`, true},
		{"printf whole dot", channels.KindSMS, `{{define "alert.sms.text"}}{{printf "%v" .}}{{end}}`, true},
		{"piped whole dot", channels.KindSMS, `{{define "alert.sms.text"}}{{. | printf "%v"}}{{end}}`, true},
		{"print dot", channels.KindSMS, `{{define "alert.sms.text"}}{{.}}{{end}}`, true},
		{"range over dot", channels.KindSMS, `{{define "alert.sms.text"}}{{range .}}x{{end}}{{.Title}}{{end}}`, true},
		{"field unknown", channels.KindSMS, `{{define "alert.sms.text"}}{{.Title}}{{.Nope}}{{end}}`, true},
		{"recursive partials", channels.KindSMS, `{{define "_a"}}{{.Title}}{{if false}}{{template "_b" .}}{{end}}{{end}}
{{define "_b"}}{{template "_a" .}}{{.RecipientName}}{{end}}
{{define "alert.sms.text"}}{{template "_a" .}}{{end}}`, true},
		{"undefined partial", channels.KindSMS, `{{define "alert.sms.text"}}{{.Title}}{{if false}}{{template "_nope" .}}{{end}}{{end}}`, true},
		{"slack subject only", channels.KindSlack, `{{define "alert.slack.subject"}}For {{.RecipientName}}{{end}}
{{define "alert.slack.text"}}{{.Title}}{{end}}`, true},
		{"email html only", channels.KindEmail, `{{define "alert.email.subject"}}{{.Title}}{{end}}
{{define "alert.email.text"}}{{.Summary}}{{end}}
{{define "alert.email.html"}}<p>{{.Summary}}</p><a href="mailto:{{.RecipientID}}@example.org">me</a>{{end}}`, true},
		{"email html script dot", channels.KindEmail, `{{define "alert.email.subject"}}{{.Title}}{{end}}
{{define "alert.email.text"}}{{.Summary}}{{end}}
{{define "alert.email.html"}}<script>var d = {{.}};</script>{{end}}`, true},

		{"group fields only", channels.KindSMS, `{{define "alert.sms.text"}}{{upper (severity .Severity)}} {{.Title}} {{localtime .OpenedAt}}
{{join "," .RecipientNations}} {{.RecipientLocale}} {{.RecipientTimeZone}}
{{range impactsIn .Impacts .RecipientNations}}{{nation .Nation}} {{.Service}} {{$.Title}}{{end}}{{end}}`, false},
		{"with and if on dot", channels.KindSMS, `{{define "alert.sms.text"}}{{with .}}{{.Title}}{{end}}{{if .}}!{{end}}{{if not .}}?{{end}}{{end}}`, false},
		{"partial given a field", channels.KindSMS, `{{define "_list"}}{{range .}}{{printf "%v" .}}{{end}}{{end}}
{{define "alert.sms.text"}}{{.Title}}{{template "_list" .Impacts}}{{end}}`, false},
		{"partial given dot", channels.KindSMS, `{{define "_head"}}{{.IncidentID}}: {{.Title}}{{end}}
{{define "alert.sms.text"}}{{template "_head" .}} {{status .Status}}{{end}}`, false},
		{"variables", channels.KindSMS, `{{define "alert.sms.text"}}{{$d := .}}{{$t := $d.Title}}{{range $i, $im := .Impacts}}{{$i}} {{$im.Service}} {{$t}} {{$d.Severity}}{{end}}{{end}}`, false},
		{"email group fields", channels.KindEmail, `{{define "alert.email.subject"}}[{{severity .Severity}}] {{.Title}}{{end}}
{{define "alert.email.text"}}{{.Summary}} {{.NowLocal}}{{end}}
{{define "alert.email.html"}}<h1>{{.Title}}</h1><a href="{{.DashboardURL}}">{{.IncidentID}}</a>{{end}}`, false},
	}
}

func TestSet_Personal_Overrides(t *testing.T) {
	for _, tt := range personalCases() {
		t.Run(tt.name, func(t *testing.T) {
			s := mustLoad(t, writeOverrides(t, map[string]string{"en/x.tmpl": tt.src}))
			got, why := s.personalWhy(EventAlert, tt.kind, "en")
			if got != tt.want {
				t.Fatalf("Personal = %v (%s), want %v", got, why, tt.want)
			}
			if got && why == "" {
				t.Error("personal without a reason")
			}
			t.Log(why)
			if s.Personal(EventAlert, tt.kind, "en") != got {
				t.Error("Personal disagrees with personalWhy")
			}
			if got {
				return
			}
			// Not personal: the recipient must not show in the output.
			d := SampleData()
			ref, err := s.Render(EventAlert, tt.kind, "en", d)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range recipientPairs() {
				r, err := s.Render(EventAlert, tt.kind, "en", otherRecipient(d, p[0], p[1]))
				if err != nil {
					t.Fatal(err)
				}
				if r != ref {
					t.Errorf("rendering for %q differs:\n%+v\n%+v", p[1], r, ref)
				}
			}
		})
	}
}

func TestSet_Personal_Unrenderable(t *testing.T) {
	s := mustLoad(t, "")
	tests := []struct {
		name          string
		event, locale string
		kind          channels.Kind
	}{
		{"unknown locale", EventAlert, "fr", channels.KindSMS},
		{"unknown kind", EventAlert, "en", channels.Kind("fax")},
		{"unknown event", "reminder", "en", channels.KindSMS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !s.Personal(tt.event, tt.kind, tt.locale) {
				t.Error("Personal = false for something Render cannot render")
			}
		})
	}
}

// TestDataField_EveryFieldClassified fails when a field is added to Data
// without deciding whether it identifies the recipient.
func TestDataField_EveryFieldClassified(t *testing.T) {
	typ := reflect.TypeOf(Data{})
	for i := 0; i < typ.NumField(); i++ {
		if name := typ.Field(i).Name; dataField(name) == fieldUnknown {
			t.Errorf("Data.%s is not classified in dataField", name)
		}
	}
	if typ.NumMethod() != 0 {
		t.Errorf("Data has %d methods; a method may read RecipientName, so the analysis treats calling one as personal — classify it", typ.NumMethod())
	}
	for _, f := range []string{"RecipientID", "RecipientName"} {
		if dataField(f) != fieldRecipient {
			t.Errorf("%s is not recipient-identifying", f)
		}
	}
}

// TestSet_Personal_Concurrent asks for every answer from several
// goroutines while rendering; run with -race.
func TestSet_Personal_Concurrent(t *testing.T) {
	s := mustLoad(t, "")
	ref := mustLoad(t, "")
	var wg sync.WaitGroup
	errs := make(chan error, 4*2*len(Locales())*len(Events())*len(channels.Kinds))
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, locale := range Locales() {
				for _, event := range Events() {
					for _, kind := range channels.Kinds {
						got := s.Personal(event, kind, locale)
						if want, _ := ref.personalWhy(event, kind, locale); got != want {
							errs <- fmt.Errorf("%s/%s.%s: %v, want %v", locale, event, kind, got, want)
						}
						if s.Has(event, kind, locale) {
							if _, err := s.Render(event, kind, locale, SampleDataFor(locale)); err != nil {
								errs <- err
							}
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSet_Personal(b *testing.B) {
	s, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			s.Personal(EventBriefing, channels.KindEmail, "en")
		}
	})
	b.Run("analysis_briefing_email_en", func(b *testing.B) {
		for b.Loop() {
			s.personalWhy(EventBriefing, channels.KindEmail, "en")
		}
	})
}

// TestSet_Personal_GeneratedTemplates checks the promise on templates
// built at random (fixed seed) from fragments that reach the data in the
// ways the analysis must follow: whenever Personal says false, rendering
// for other recipients of the group is byte-identical.
func TestSet_Personal_GeneratedTemplates(t *testing.T) {
	body := []string{
		`{{.Title}}`, `{{severity .Severity}}`, `{{join "," .RecipientNations}}`, `{{.RecipientLocale}}`,
		`{{.RecipientName}}`, `{{.RecipientID}}`, `{{$.RecipientName}}`, `{{if eq .RecipientID "sub-0193"}}y{{end}}`,
		`{{with $}}{{.Summary}}{{end}}`, `{{with $}}{{.RecipientID}}{{end}}`,
		`{{range .Impacts}}{{.Service}}{{$.IncidentID}}{{end}}`, `{{range .Impacts}}{{$.RecipientName}}{{end}}`,
		`{{range $i, $e := .Timeline}}{{$i}}{{with $}}{{.Title}}{{end}}{{end}}`,
		`{{template "_a" .}}`, `{{template "_b" .}}`, `{{template "_b" .Impacts}}`, `{{template "_a" (or .Title .)}}`,
		`{{$v := .}}{{$v.Title}}`, `{{$v := .}}{{$v.RecipientID}}`, `{{$v := .Title}}{{range .Impacts}}{{$v}}{{$v = $}}{{end}}`,
		`{{printf "%v" .Impacts}}`, `{{printf "%v" .}}`, `{{with and true .}}{{.Severity}}{{end}}`, `{{if not .}}x{{end}}`,
	}
	partial := []string{
		`{{.Title}}`, `{{.RecipientName}}`, `{{with .}}{{.Severity}}{{end}}`, `{{printf "%v" .}}`, `{{template "_a" .}}`,
		`{{range .Impacts}}{{.Service}}{{end}}`, `{{$.Summary}}`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(list []string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(list[rng.IntN(len(list))])
			b.WriteString(" ")
		}
		return b.String()
	}
	checked, personal := 0, 0
	for i := range 120 {
		src := fmt.Sprintf("{{define \"_a\"}}%s{{end}}\n{{define \"_b\"}}%s{{end}}\n{{define \"alert.slack.text\"}}%s{{end}}",
			pick(partial[:4], 1), pick(partial, 1+rng.IntN(2)), pick(body, 1+rng.IntN(4)))
		s := mustLoad(t, writeOverrides(t, map[string]string{"en/x.tmpl": src}))
		if s.Personal(EventAlert, channels.KindSlack, "en") {
			personal++
			continue
		}
		d := SampleData()
		ref, err := s.Render(EventAlert, channels.KindSlack, "en", d)
		if err != nil {
			continue // for example a partial given an impact list where it wants Data
		}
		checked++
		for _, p := range recipientPairs() {
			r, err := s.Render(EventAlert, channels.KindSlack, "en", otherRecipient(d, p[0], p[1]))
			if err != nil || r != ref {
				t.Errorf("case %d: Personal = false but rendering for %q differs (err %v):\n%s", i, p[1], err, src)
				break
			}
		}
	}
	t.Logf("%d personal, %d not personal and checked", personal, checked)
	if checked < 20 || personal < 20 {
		t.Errorf("the generator is lopsided: %d personal, %d checked", personal, checked)
	}
}
