package templates

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
)

// writeOverrides creates an override directory from relative path → content.
func writeOverrides(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func TestSet_Check_DefaultsClean(t *testing.T) {
	s := mustLoad(t, "")
	for _, err := range s.Check() {
		t.Error(err)
	}
}

func TestSet_Names_Defaults(t *testing.T) {
	names := mustLoad(t, "").Names()
	if !sortedStrings(names) {
		t.Errorf("Names not sorted: %v", names)
	}
	for _, want := range []string{"cy/alert.sms.text", "en/alert.sms.text", "en/briefing.email.html", "cy/_html_impacts"} {
		if !containsString(names, want) {
			t.Errorf("Names lacks %q", want)
		}
	}
	for _, n := range names {
		if strings.Contains(n, ".tmpl") || n == "en" || n == "cy" {
			t.Errorf("Names lists a file or root template: %q", n)
		}
	}
}

func TestSet_Render_Escaping(t *testing.T) {
	const title = `<script>alert(1)</script> & <!channel>`
	s := mustLoad(t, "")
	d := SampleData()
	d.Title = title
	render := func(event string, kind channels.Kind) Rendered {
		r, err := s.Render(event, kind, "en", d)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	email, slack, sms := render(EventAlert, channels.KindEmail), render(EventAlert, channels.KindSlack), render(EventAlert, channels.KindSMS)
	tests := []struct {
		name, got, want, notWant string
	}{
		{"email html escaped", email.HTML, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;", "<script>"},
		{"email text as-is", email.Text, title, "&lt;"},
		{"email subject as-is", email.Subject, title, "&lt;"},
		{"slack text escaped", slack.Text, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;", "<!channel>"},
		{"slack subject escaped", slack.Subject, "&lt;!channel&gt;", "<!channel>"},
		{"sms as-is", sms.Text, title, "&lt;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(tt.got, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, tt.got)
			}
			if strings.Contains(tt.got, tt.notWant) {
				t.Errorf("must not contain %q:\n%s", tt.notWant, tt.got)
			}
		})
	}
	// Template markup itself is not escaped: the link to the dashboard is
	// still a Slack link.
	if !strings.Contains(slack.Text, "<https://crier.example.org/incidents/INC-2207|Open in crier>") {
		t.Errorf("slack link markup lost:\n%s", slack.Text)
	}
}

// TestPrepare_SlackEscapesEveryString fills every string in Data, at any
// depth, with markup and checks that none survives, so a field added
// later cannot become an injection path.
func TestPrepare_SlackEscapesEveryString(t *testing.T) {
	d := SampleData()
	fill := walk(reflect.ValueOf(d), time.UTC, func(string) string { return "<!here>" }).Interface().(Data)
	out := prepare(fill, time.UTC, true)
	var leaks []string
	collect(reflect.ValueOf(out), "Data", func(path, s string) {
		if strings.ContainsAny(s, "<>") {
			leaks = append(leaks, path)
		}
	})
	if len(leaks) > 0 {
		t.Errorf("strings not escaped for Slack: %v", leaks)
	}
	// The caller's Data is untouched.
	if fill.Incidents[0].Impacts[0].Service != "<!here>" || fill.Title != "<!here>" {
		t.Error("prepare modified its argument")
	}
}

// collect calls f for every string inside v.
func collect(v reflect.Value, path string, f func(path, s string)) {
	switch v.Kind() {
	case reflect.String:
		f(path, v.String())
	case reflect.Struct:
		if v.Type() == timeType {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			collect(v.Field(i), path+"."+v.Type().Field(i).Name, f)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			collect(v.Index(i), path+"[]", f)
		}
	}
}

func TestSet_Render_TimeZone(t *testing.T) {
	s := mustLoad(t, "")
	tests := []struct {
		zone, want string
	}{
		{"Europe/London", "Updated Tuesday 16 June 2026, 07:45 BST"},
		{"America/New_York", "Updated Tuesday 16 June 2026, 02:45 EDT"},
		{"", "Updated Tuesday 16 June 2026, 06:45 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			d := SampleData()
			d.RecipientTimeZone = tt.zone
			r, err := s.Render(EventBriefing, channels.KindSlack, "en", d)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.Text, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, r.Text)
			}
		})
	}
	d := SampleData()
	d.RecipientTimeZone = "Europe/Lundun"
	_, err := s.Render(EventAlert, channels.KindSMS, "en", d)
	if err == nil || !strings.Contains(err.Error(), `"Europe/Lundun"`) || !strings.Contains(err.Error(), "IANA") {
		t.Errorf("bad zone: got %v, want an error naming the zone and the fix", err)
	}
}

func TestSet_Render_FillsDefaults(t *testing.T) {
	s := mustLoad(t, "")
	d := SampleDataFor("cy")
	d.NowLocal, d.RecipientLocale = "", ""
	r, err := s.Render(EventMessage, channels.KindEmail, "cy", d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Text, "Dydd Mawrth 16 Mehefin 2026, 08:00 BST") {
		t.Errorf("NowLocal not filled in Welsh:\n%s", r.Text)
	}
}

func TestFormatTime_Locales(t *testing.T) {
	winter := time.Date(2006, time.January, 2, 15, 4, 0, 0, time.FixedZone("GMT", 0))
	tests := []struct {
		locale string
		t      time.Time
		want   string
	}{
		{"en", winter, "Monday 2 January 2006, 15:04 GMT"},
		{"cy", winter, "Dydd Llun 2 Ionawr 2006, 15:04 GMT"},
		{"cy", winter.AddDate(0, 2, 1), "Dydd Gwener 3 Mawrth 2006, 15:04 GMT"},
		{"xx", winter, "Monday 2 January 2006, 15:04 GMT"},
		{"cy", time.Time{}, ""},
	}
	for _, tt := range tests {
		if got := FormatTime(tt.t, tt.locale); got != tt.want {
			t.Errorf("FormatTime(%v, %s) = %q, want %q", tt.t, tt.locale, got, tt.want)
		}
	}
}

func TestFuncs_ImpactHelpers(t *testing.T) {
	impacts := []Impact{
		{Service: "A", Nation: "wales"}, {Service: "B", Nation: "atlantis"},
		{Service: "C", Nation: "england"}, {Service: "D", Nation: "wales"},
	}
	var order []string
	for _, g := range byNation(impacts) {
		for _, im := range g.Impacts {
			order = append(order, g.Nation+":"+im.Service)
		}
	}
	if got, want := strings.Join(order, " "), "england:C wales:A wales:D atlantis:B"; got != want {
		t.Errorf("byNation order = %s, want %s", got, want)
	}
	if got := impactsIn(impacts, nil); len(got) != 4 {
		t.Errorf("impactsIn(no nations) = %d impacts, want all 4", len(got))
	}
	if got := impactsIn(impacts, []string{"wales"}); len(got) != 2 || got[0].Service != "A" || got[1].Service != "D" {
		t.Errorf("impactsIn(wales) = %v", got)
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] > s[i] {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func BenchmarkSet_Render(b *testing.B) {
	s, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		event  string
		kind   channels.Kind
		locale string
	}{
		{"alert_sms_cy", EventAlert, channels.KindSMS, "cy"},
		{"alert_slack_en", EventAlert, channels.KindSlack, "en"},
		{"briefing_email_en", EventBriefing, channels.KindEmail, "en"},
		{"briefing_sms_cy", EventBriefing, channels.KindSMS, "cy"},
	}
	for _, c := range cases {
		d := SampleDataFor(c.locale)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Render(c.event, c.kind, c.locale, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSet_Render_Concurrent renders every default from many goroutines at
// once (the dispatcher's workers share one Set); run with -race.
func TestSet_Render_Concurrent(t *testing.T) {
	s := mustLoad(t, "")
	type job struct {
		event, locale string
		kind          channels.Kind
	}
	var jobs []job
	want := map[job]Rendered{}
	for _, locale := range Locales() {
		for _, event := range Events() {
			for _, kind := range channels.Kinds {
				if s.Has(event, kind, locale) {
					jobs = append(jobs, job{event, locale, kind})
				}
			}
		}
	}
	// The expected output comes from a second Set, so that the first
	// execution (when html/template escapes) happens concurrently below.
	ref := mustLoad(t, "")
	for _, j := range jobs {
		r, err := ref.Render(j.event, j.kind, j.locale, SampleDataFor(j.locale))
		if err != nil {
			t.Fatal(err)
		}
		want[j] = r
	}
	errs := make(chan error, 4*len(jobs))
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, j := range jobs {
				r, err := s.Render(j.event, j.kind, j.locale, SampleDataFor(j.locale))
				if err != nil {
					errs <- err
				} else if r != want[j] {
					errs <- errors.New(j.locale + "/" + j.event + "." + string(j.kind) + ": differs under concurrency")
				}
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
