package dashboard_test

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
)

func TestDashboard_Pages_RolesAndRoutes(t *testing.T) {
	e := newEnv(t)
	for _, p := range e.d.Pages() {
		switch {
		case strings.HasPrefix(p.Pattern, "/static/"):
			if p.Role != "" {
				t.Errorf("%s %s needs %q: the stylesheet must load on the sign-in page", p.Method, p.Pattern, p.Role)
			}
		case p.Method != "GET" || p.Pattern == "/compose" || p.Pattern == "/incidents/new":
			if p.Role != "operator" {
				t.Errorf("%s %s needs %q, want operator: it changes incidents or sends", p.Method, p.Pattern, p.Role)
			}
		default:
			if p.Role != "viewer" {
				t.Errorf("%s %s needs %q, want viewer (read-only)", p.Method, p.Pattern, p.Role)
			}
		}
	}
	code, h, _ := e.get("/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	for k, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if !strings.Contains(h.Get(k), want) {
			t.Errorf("GET / header %s = %q, want it to contain %q", k, h.Get(k), want)
		}
	}
	code, h, body := e.get("/static/style.css")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || !strings.Contains(body, ".tag") {
		t.Errorf("GET /static/style.css = %d %q", code, h.Get("Content-Type"))
	}
	if code, _, _ := e.get("/static/nope.css"); code != http.StatusNotFound {
		t.Errorf("GET /static/nope.css = %d, want 404", code)
	}
}

func TestDashboard_OpenIncident_FormBecomesChange(t *testing.T) {
	e := newEnv(t)
	e.app.outcome = dispatch.Outcome{Queued: 12}
	form := url.Values{"csrf": {"csrf-1"}, "title": {"Referrals down"}, "severity": {"critical"}, "summary": {"Use paper."}, "marking": {"OFFICIAL"},
		"impact.0.service": {"Referrals"}, "impact.0.nation": {"wales"}, "impact.0.status": {"outage"}, "impact.0.workaround": {"phone"},
		"impact.1.service": {""}, "impact.1.nation": {""}, "impact.1.status": {""}, "impact.1.workaround": {""}}
	code, loc, _ := e.post("/incidents", form)
	if code != http.StatusSeeOther || loc != "/incidents/INC-7?ok=opened&n=12" {
		t.Fatalf("POST /incidents = %d to %q", code, loc)
	}
	want := incidents.Change{Title: "Referrals down", Severity: "critical", Summary: "Use paper.", Marking: "OFFICIAL",
		Impacts: []incidents.Impact{{Service: "Referrals", Nation: "wales", Status: "outage", Workaround: "phone"}}}
	if len(e.app.opened) != 1 || !reflect.DeepEqual(e.app.opened[0], want) {
		t.Errorf("the app was asked to open %+v, want %+v (the blank row left out)", e.app.opened, want)
	}
	if e.notify != 1 {
		t.Errorf("the dispatcher was woken %d times, want 1", e.notify)
	}
}

func TestDashboard_OpenIncident_ProblemsShownOnTheirFields(t *testing.T) {
	e := newEnv(t)
	var errs fields.List
	errs.Add("title", "", "is required: say in a few words what is wrong")
	errs.Add("impacts[0].status", "", "is required: operational, degraded, outage or restored")
	e.app.err = errs.Err()
	form := url.Values{"severity": {"major"},
		"impact.0.service": {""}, "impact.0.nation": {""}, "impact.0.status": {""}, "impact.0.workaround": {""},
		"impact.1.service": {"Dispatch <b>"}, "impact.1.nation": {"england"}, "impact.1.status": {""}, "impact.1.workaround": {""}}
	code, _, body := e.post("/incidents", form)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /incidents with problems = %d, want 422", code)
	}
	// impacts[0] is the second form row (the first was blank and not sent)
	mustContain(t, "the form page", body, `href="#f-title">Title: is required`, `href="#f-impact.1.status">Impact row 2 (status): is required`,
		`<p class="field-error" id="impact.1.status-error">`, `aria-describedby="impact.1.status-error"`, `value="Dispatch &lt;b&gt;"`, `value="major" checked`)
	if e.notify != 0 {
		t.Errorf("a refused form woke the dispatcher")
	}
}

func TestDashboard_ChangeIncident_SendsOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	inc := e.openIncident(incidents.Change{Title: "Referrals down", Severity: "critical",
		Impacts: []incidents.Impact{{Service: "Referrals", Nation: "wales", Status: "outage", Workaround: "phone"},
			{Service: "Dispatch", Nation: "england", Status: "degraded"}}})
	tests := []struct {
		name string
		form url.Values
		want incidents.Change
	}{
		{"text only", url.Values{"text": {"Still down."}, "status": {"investigating"}, "severity": {"critical"},
			"impact.0.existing": {"1"}, "impact.0.service": {"Referrals"}, "impact.0.nation": {"wales"}, "impact.0.status": {"outage"}, "impact.0.workaround": {"phone"}},
			incidents.Change{Text: "Still down."}},
		{"status and one impact eased, one added", url.Values{"text": {""}, "status": {"identified"}, "severity": {"critical"}, "next_update": {"1h"},
			"impact.0.existing": {"1"}, "impact.0.service": {"Referrals"}, "impact.0.nation": {"wales"}, "impact.0.status": {"degraded"}, "impact.0.workaround": {"phone"},
			"impact.1.existing": {"1"}, "impact.1.service": {"Dispatch"}, "impact.1.nation": {"england"}, "impact.1.status": {"degraded"}, "impact.1.workaround": {""},
			"impact.2.service": {"Prescriptions"}, "impact.2.nation": {"scotland"}, "impact.2.status": {"outage"}, "impact.2.workaround": {""}},
			incidents.Change{Status: "identified", NextUpdateAt: t0.Add(60 * 60 * 1e9), Impacts: []incidents.Impact{
				{Service: "Referrals", Nation: "wales", Status: "degraded", Workaround: "phone"},
				{Service: "Prescriptions", Nation: "scotland", Status: "outage"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.app.changed = nil
			code, loc, _ := e.post("/incidents/"+inc.ID+"/updates", tt.form)
			if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/incidents/INC-1?ok=update&seq=2") {
				t.Fatalf("POST update = %d to %q", code, loc)
			}
			if len(e.app.changed) != 1 {
				t.Fatalf("the app got %d changes", len(e.app.changed))
			}
			got := e.app.changed[0]
			if got.ID != "INC-1" || got.Kind != "update" || !reflect.DeepEqual(got.C, tt.want) {
				t.Errorf("the app was asked %s %s %+v\nwant %+v", got.Kind, got.ID, got.C, tt.want)
			}
		})
	}
	t.Run("resolve", func(t *testing.T) {
		e.app.changed = nil
		code, loc, _ := e.post("/incidents/"+inc.ID+"/resolve", url.Values{"text": {"Back to normal."}})
		if code != http.StatusSeeOther || !strings.Contains(loc, "ok=resolve") || len(e.app.changed) != 1 || e.app.changed[0].Kind != "resolve" ||
			e.app.changed[0].C.Text != "Back to normal." {
			t.Errorf("POST resolve = %d to %q; app got %+v", code, loc, e.app.changed)
		}
	})
	t.Run("unknown incident", func(t *testing.T) {
		code, _, body := e.post("/incidents/INC-99/updates", url.Values{"text": {"x"}})
		if code != http.StatusNotFound || !strings.Contains(body, "INC-99") {
			t.Errorf("POST to INC-99 = %d", code)
		}
	})
}

func TestDashboard_Incident_EscapesWhatPeopleTyped(t *testing.T) {
	e := newEnv(t)
	inc := e.openIncident(incidents.Change{Title: `<script>alert("t")</script>`, Severity: "major", Summary: `<img src=x onerror=alert(1)>`,
		Impacts: []incidents.Impact{{Service: `"><svg onload=alert(2)>`, Nation: "wales", Status: "outage"}}})
	for _, path := range []string{"/", "/incidents", "/incidents/" + inc.ID} {
		code, _, body := e.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, code)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<svg onload"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s carries %q unescaped", path, raw)
			}
		}
	}
	_, _, body := e.get("/incidents/" + inc.ID)
	mustContain(t, "the incident page", body, "&lt;script&gt;", "Major", "Outage", "Wales")
}

func TestDashboard_Viewer_SeesNoForms(t *testing.T) {
	e := newEnv(t)
	inc := e.openIncident(incidents.Change{Title: "Referrals down", Severity: "minor"})
	e.who.Role = "viewer"
	_, _, body := e.get("/incidents/" + inc.ID)
	if strings.Contains(body, `action="/incidents/INC-1/updates"`) || strings.Contains(body, `href="/compose"`) {
		t.Error("a viewer is offered the update form or the send page")
	}
	mustContain(t, "a viewer's incident page", body, "Timeline", "Referrals down")
}
