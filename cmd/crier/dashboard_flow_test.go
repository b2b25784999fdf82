package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// dashboardHarness is the example config with an operator token and a
// slow sandbox email channel (one at a time, 1s each), so a broadcast's
// progress is still running when its page first loads.
func dashboardHarness(t *testing.T) *harness {
	t.Helper()
	h := serveHarness(t)
	yaml := exampleYAML(t)
	for from, to := range map[string]string{
		"  tokens: []\n": "  tokens:\n    - name: test-desk\n      role: operator\n      token: ${CRIER_TEST_TOKEN}\n",
		"    concurrency: 4\n    sandbox:\n      kind: email\n": "    concurrency: 1\n    sandbox:\n      kind: email\n      latency: 1s\n",
	} {
		if !strings.Contains(yaml, from) {
			t.Fatalf("the example config no longer has %q", from)
		}
		yaml = strings.Replace(yaml, from, to, 1)
	}
	h.write("config.yaml", yaml)
	h.tick() // retries, leases and "ago" see time pass
	return h
}

// unlabelled lists the visible form controls of the page that have no
// label (a screen reader would announce them as just "edit text").
const unlabelled = `[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
	.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name).join(',')`

// TestDashboard_Browser_OperatorFlow is must-show 1: sign in, open an
// incident, post an update, compose a broadcast and watch its progress
// reach the end without reloading, find one recipient's message in the
// log; then the same pages on a phone-sized screen.
func TestDashboard_Browser_OperatorFlow(t *testing.T) {
	h := dashboardHarness(t)
	s := startServe(t, h)
	b := newBrowser(t, s.base)

	// Signing in: an unsigned visit goes to the sign-in page and back.
	b.open("/incidents")
	if p := b.path(); !strings.HasPrefix(p, "/signin?next=") {
		t.Fatalf("an unsigned visit to /incidents landed on %s, want the sign-in page", p)
	}
	b.shot("signin")
	b.do("type the token", chromedp.SetValue(chromedp.CSS("#f-token"), serveToken))
	if p := b.submit("sign in", "form:has(#f-token) button[type=submit]"); p != "/incidents" {
		t.Fatalf("after signing in the browser is at %s, want /incidents (where it was going)", p)
	}
	b.contains("header", "test-desk", "operator", "Sign out")

	// Opening an incident: a missing title is named, then it opens.
	b.open("/incidents/new")
	if got := b.eval("unlabelled controls", unlabelled); got != "" {
		t.Errorf("controls without a label on /incidents/new: %s", got)
	}
	b.submitInvalid("open with no title", "form[action='/incidents'] button[type=submit]")
	b.contains(".error-summary", "Title: is required", "Severity: is required")
	b.contains(".has-error", "is required")
	b.shot("incident-new-errors")
	b.do("fill in the incident",
		chromedp.SetValue(chromedp.CSS("#f-title"), "Ambulance dispatch down in Wales"),
		chromedp.Click(chromedp.CSS("input[name=severity][value=critical]")),
		chromedp.SetValue(chromedp.CSS("#f-summary"), "The 111 clinical system is down after a cyber attack on its supplier."),
		chromedp.SetValue(chromedp.CSS(`[name="impact.0.service"]`), "Ambulance dispatch"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.0.nation"]`), "wales"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.0.status"]`), "outage"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.0.workaround"]`), "phone 999 control direct"))
	if p := b.submit("open the incident", "form[action='/incidents'] button[type=submit]"); !strings.HasPrefix(p, "/incidents/INC-1?ok=opened") {
		t.Fatalf("after opening, the browser is at %s", p)
	}
	b.contains(".flash", "Incident opened")
	b.contains("h1", "INC-1", "Ambulance dispatch down in Wales")
	b.contains("table.matrix", "Ambulance dispatch", "Outage", "phone 999 control direct")
	b.shot("incident")

	// Posting an update that changes the matrix: one impact eases, one is added.
	if got := b.eval("unlabelled controls", unlabelled); got != "" {
		t.Errorf("controls without a label on the incident page: %s", got)
	}
	b.do("fill in the update",
		chromedp.SetValue(chromedp.CSS("#f-text"), "Paper dispatch in use; calls are getting through."),
		chromedp.SetValue(chromedp.CSS("#f-status"), "identified"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.0.status"]`), "degraded"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.1.service"]`), "Prescriptions"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.1.nation"]`), "england"),
		chromedp.SetValue(chromedp.CSS(`[name="impact.1.status"]`), "outage"))
	if p := b.submit("post the update", "form[action$='/updates'] button[type=submit]"); !strings.HasPrefix(p, "/incidents/INC-1?ok=update") {
		t.Fatalf("after the update, the browser is at %s", p)
	}
	b.contains(".flash", "Update #2 posted")
	b.contains(".timeline li:first-child", "#2", "Paper dispatch in use", "Prescriptions in England", "Degraded")
	b.contains("table.matrix", "Prescriptions", "Degraded")
	b.shot("incident-updated")
	var inc struct {
		Status  string `json:"status"`
		Impacts []struct{ Service, Nation, Status string }
	}
	code, _, body := s.call(t, "GET", "/api/v1/incidents/INC-1", serveToken, "", nil)
	if err := json.Unmarshal(body, &inc); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/incidents/INC-1: %d %v %s", code, err, body)
	}
	if inc.Status != "identified" || len(inc.Impacts) != 2 || inc.Impacts[0].Status != "degraded" || inc.Impacts[1].Nation != "england" {
		t.Errorf("the server's incident after the dashboard update = %+v", inc)
	}

	// Composing a broadcast: the pre-flight says who, how many, which
	// language, and who is not told and why; then it is sent and its
	// progress reaches the end on the page, with no reload.
	b.open("/compose")
	if got := b.eval("unlabelled controls", unlabelled); got != "" {
		t.Errorf("controls without a label on /compose: %s", got)
	}
	const subject, text = "Helpline outage: ministers' call at 15:00", "The ministers' call on the helpline outage is at 15:00. Dial-in details are in the invitation."
	b.do("fill in the broadcast",
		chromedp.SetValue(chromedp.CSS("#f-audience"), "ministers"),
		chromedp.Click(chromedp.CSS("input[name=channels][value=ministers-email]")),
		chromedp.Click(chromedp.CSS("input[name=channels][value=clinician-sms]")),
		chromedp.SetValue(chromedp.CSS("#f-subject"), subject),
		chromedp.SetValue(chromedp.CSS("#f-body"), text))
	b.submit("check the broadcast", "form:has(input[name=mode][value=broadcast]) button[type=submit]")
	b.contains("#preflight h2", "4 people, 5 messages")
	b.contains("#preflight", "ministers-email", "cy 1, en 2", "Who will not be told", "official-scotland", "No address", "minister-health")
	b.shot("preflight")
	p := b.submit("send the broadcast", "form.send button[type=submit]")
	if !strings.HasPrefix(p, "/broadcasts/") {
		t.Fatalf("after sending, the browser is at %s", p)
	}
	if st := b.eval("progress state", `document.getElementById('live').dataset.state`); st != "running" {
		t.Fatalf("the progress page loaded with state %q; the test wants to watch it run (is the email sandbox still slow?)", st)
	}
	b.eval("mark the page", `window.crierTestMark = "same page"`)
	b.shot("progress-running")
	b.do("wait for the end", chromedp.Query(chromedp.CSS("#live[data-state=done]")))
	if mark := b.eval("page mark", `String(window.crierTestMark)`); mark != "same page" {
		t.Errorf("the progress page reloaded (mark %q): it should update in place", mark)
	}
	for sel, want := range map[string]string{"#live .big-counts [data-count=queued]": "0", "#live .big-counts [data-count=sent]": "5",
		"#live .big-counts [data-count=suppressed]": "3", "[data-count=finished]": "8", "#state": "Finished"} {
		if got := b.text(sel); !strings.Contains(got, want) {
			t.Errorf("%s says %q at the end, want %q", sel, got, want)
		}
	}
	b.shot("progress-done")
	var log struct {
		Deliveries []apiDelivery `json:"deliveries"`
	}
	code, _, body = s.call(t, "GET", "/api/v1/deliveries?limit=5000", serveToken, "", nil)
	if err := json.Unmarshal(body, &log); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/deliveries: %d %v", code, err)
	}
	got := map[string]int{}
	for _, d := range log.Deliveries {
		if d.IncidentID == "" {
			got[d.Status]++
		}
	}
	if got["sent"] != 5 || got["suppressed"] != 3 || len(got) != 2 {
		t.Errorf("the server's log of the broadcast: %v, want 5 sent and 3 suppressed (no address)", got)
	}

	// The log: filter by one recipient, open their message.
	b.open("/log")
	b.do("filter by recipient", chromedp.SetValue(chromedp.CSS("#f-subscriber"), "official-wales"))
	b.submit("filter the log", ".filters button[type=submit]")
	b.contains("table.log tbody", "official-wales", "ministers-email", subject)
	b.shot("log")
	b.submit("open the email", "table.log tbody a[aria-label*='ministers-email']")
	b.contains(".message .subject", subject)
	b.contains(".message pre.body", text)
	b.contains("dl.facts", "official-wales", "gareth.llewelyn@llyw.example.cymru", "Sent")
	b.do("show the HTML version", chromedp.Click(chromedp.CSS(".message details summary")), chromedp.WaitVisible(chromedp.CSS("iframe.html")))
	b.shot("delivery")
	b.open("/recipients/official-wales")
	b.contains("main", subject, text)
	b.shot("recipient")

	// The other read-only pages.
	b.open("/schedules")
	b.contains("main", "Ministers' situation report", "Next")
	b.shot("schedules")
	b.open("/")
	b.contains("main", "Ambulance dispatch down in Wales", "clinician-sms", "ministers-email")
	if n := b.eval("chart bars", `String(document.querySelectorAll('figure.chart svg rect').length)`); n == "0" {
		t.Error("the overview's chart has no bars")
	}
	b.shot("overview")

	// Keyboard: the first Tab reaches the skip link.
	b.do("press Tab", chromedp.KeyEvent("\t"))
	if cls := b.eval("focused element", `document.activeElement.className`); cls != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", cls)
	}

	// A phone: nothing is wider than the screen.
	b.do("phone screen", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/", "/incidents/INC-1", "/compose", p} {
		b.open(path)
		if fits := b.eval("page width", `String(document.documentElement.scrollWidth <= window.innerWidth)`); fits != "true" {
			t.Errorf("%s is wider than a 390px phone screen", path)
		}
		b.shotScreen("phone" + strings.ReplaceAll(strings.SplitN(path, "?", 2)[0], "/", "-"))
	}
	// Without JavaScript the pages are the same, and a running broadcast's
	// page reloads itself until it is done. This one is sent through the
	// API, by another operator.
	b.do("laptop screen", chromedp.EmulateViewport(1280, 900))
	b.noScript()
	code, _, body = s.call(t, "POST", "/api/v1/broadcasts", serveToken,
		`{"audience":"ministers","channels":["ministers-email"],"subject":"No script","body":"Read without JavaScript."}`, nil)
	var sent struct {
		TriggerID int64 `json:"trigger_id"`
	}
	if err := json.Unmarshal(body, &sent); err != nil || code != http.StatusCreated || sent.TriggerID == 0 {
		t.Fatalf("POST /api/v1/broadcasts: %d %v %s", code, err, body)
	}
	b.open(fmt.Sprintf("/broadcasts/%d", sent.TriggerID))
	if st := b.attr("#live", "data-state"); st != "running" {
		t.Fatalf("the no-script progress page loaded with state %q, want running", st)
	}
	b.do("the no-script refresh link shows", chromedp.WaitVisible(chromedp.CSS("#live noscript a[href^='/broadcasts/']")))
	b.shot("noscript-progress-running")
	b.do("wait for the reloads to reach the end", chromedp.Query(chromedp.CSS("#live[data-state=done]")))
	b.contains("#live", "Finished", "4 of 4 finished")
	b.shot("noscript-progress-done")
	for path, want := range map[string]string{"/incidents/INC-1": "Paper dispatch in use", "/log?subscriber=official-wales": "No script",
		"/schedules": "Ministers' situation report"} {
		b.open(path)
		b.contains("main", want)
	}
}
