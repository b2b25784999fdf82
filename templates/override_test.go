package templates

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels"
)

func TestLoad_Override_Used(t *testing.T) {
	dir := writeOverrides(t, map[string]string{
		"en/alert.tmpl": `{{define "alert.sms.text"}}OVERRIDE {{.IncidentID}} {{nation "wales"}}{{end}}`,
		"README.md":     "not a template",
	})
	s := mustLoad(t, dir)
	en, err := s.Render(EventAlert, channels.KindSMS, "en", SampleData())
	if err != nil {
		t.Fatal(err)
	}
	if en.Text != "OVERRIDE INC-2207 Wales" {
		t.Errorf("en override not used: %q", en.Text)
	}
	cy, err := s.Render(EventAlert, channels.KindSMS, "cy", SampleDataFor("cy"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cy.Text, "OVERRIDE") {
		t.Errorf("an en override leaked into cy: %q", cy.Text)
	}
	// Other English blocks keep their defaults.
	if _, err := s.Render(EventAlert, channels.KindEmail, "en", SampleData()); err != nil {
		t.Error(err)
	}
	if errs := s.Check(); len(errs) > 0 {
		t.Errorf("Check: %v", errs)
	}
}

func TestLoad_Override_Errors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		file  string // want a *ParseError for this file ("" = other error)
		line  int
		want  string // substring of the error
	}{
		{"unclosed action", map[string]string{"cy/alert.tmpl": "{{define \"alert.sms.text\"}}\nok\n{{.Title}\n{{end}}"}, "cy/alert.tmpl", 3, "bad character"},
		{"unknown function", map[string]string{"en/x.tmpl": "\n\n\n{{define \"alert.sms.text\"}}{{shout .Title}}{{end}}"}, "en/x.tmpl", 4, `function "shout" not defined`},
		{"text outside blocks", map[string]string{"en/x.tmpl": "{{define \"alert.sms.text\"}}x{{end}}\n\nstray words\n"}, "en/x.tmpl", 3, "outside a {{define}} block"},
		{"unknown locale", map[string]string{"fr/alert.tmpl": ""}, "", 0, `"fr" is not a supported locale`},
		{"template outside locale dir", map[string]string{"alert.tmpl": ""}, "", 0, "not in a locale directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeOverrides(t, tt.files)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if tt.file == "" {
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if want := filepath.Join(dir, filepath.FromSlash(tt.file)); pe.File != want || pe.Line != tt.line {
				t.Errorf("ParseError at %s:%d, want %s:%d", pe.File, pe.Line, want, tt.line)
			}
			if !strings.Contains(err.Error(), pe.File) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing override directory: got %v", err)
	}
}

func TestSet_Render_MissingWelsh(t *testing.T) {
	// Every event has defaults in both languages, so the case is a block
	// for an event the defaults do not know, written in English only.
	const event = "reminder"
	dir := writeOverrides(t, map[string]string{
		"en/reminder.tmpl": `{{define "reminder.sms.text"}}Reminder {{clock .Now}}{{end}}`,
	})
	s := mustLoad(t, dir)
	if !s.Has(event, channels.KindSMS, "en") {
		t.Error("Has(en) = false, want true")
	}
	if s.Has(event, channels.KindSMS, "cy") {
		t.Error("Has(cy) = true, want false")
	}
	_, err := s.Render(event, channels.KindSMS, "cy", SampleDataFor("cy"))
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("Render(cy) error = %v, want *MissingError", err)
	}
	if me.Event != event || me.Kind != channels.KindSMS || me.Locale != "cy" || !IsMissing(err) {
		t.Errorf("MissingError = %+v", me)
	}
	// No fallback to English, and no locale invented.
	if _, err := s.Render(EventAlert, channels.KindSMS, "fr", SampleData()); !IsMissing(err) {
		t.Errorf("Render(fr) error = %v, want *MissingError", err)
	}
}

func TestSet_Check_Failures(t *testing.T) {
	dir := writeOverrides(t, map[string]string{
		"en/bad.tmpl": `{{define "alert.sms.text"}}{{.NoSuchField}}{{end}}` +
			`{{define "update.email.html"}}<p>{{template "_nowhere" .}}</p>{{end}}` +
			`{{define "alert.sms.subject"}}x{{end}}` +
			`{{define "alret.sms.text"}}x{{end}}` +
			`{{define "_partial.with.dots"}}x{{end}}`,
		"cy/only-html.tmpl": `{{define "briefing.sms.text"}}{{"   "}}{{end}}`,
	})
	errs := mustLoad(t, dir).Check()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"en/alert.sms.text", "NoSuchField", // execution error names the block and the field
		"en/update.email.html", "_nowhere",
		"en/alert.sms.subject: sms messages have no subject",
		`en/alret.sms.text: unknown event "alret"`,
		"cy/briefing.sms.text: the text is empty",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("Check output lacks %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "_partial.with.dots") {
		t.Errorf("a partial was reported:\n%s", joined)
	}
	if len(errs) != 5 {
		t.Errorf("Check returned %d errors, want 5:\n%s", len(errs), joined)
	}
}
