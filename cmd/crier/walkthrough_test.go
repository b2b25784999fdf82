package main

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const walkthroughImpact = "Referrals@wales=outage:phone the duty clinician"

// openWalkthroughIncident runs the first step on h.
func openWalkthroughIncident(h *harness) result {
	h.t.Helper()
	return h.mustRun("incident", "open", "--title", "111 clinical system down", "--severity", "critical",
		"--impact", walkthroughImpact)
}

// TestCLI_Walkthrough_ExampleConfig runs the walkthrough on the
// shipped example config: open a critical incident, send the ministers'
// briefing, and read the log as JSON, CSV and with bodies.
func TestCLI_Walkthrough_ExampleConfig(t *testing.T) {
	h := exampleHarness(t)

	r := openWalkthroughIncident(h)
	if !strings.Contains(r.stdout, "INC-1 opened") {
		t.Errorf("incident open: stdout does not say INC-1 opened:\n%s", r.stdout)
	}
	r = h.mustRun("brief", "ministers-daily")
	if !strings.Contains(r.stdout, "briefing ministers-daily: planned") {
		t.Errorf("brief: stdout does not report the plan:\n%s", r.stdout)
	}

	rows := h.logRows()
	required := []string{"id", "kind", "channel", "subscriber", "address", "status", "reason", "attempts",
		"provider_id", "trigger", "created_at"}
	for _, row := range rows {
		for _, k := range required {
			if _, ok := row.keys[k]; !ok {
				t.Errorf("log --json row %d has no %q key: %v", row.ID, k, keysOf(row.keys))
			}
		}
		if row.CreatedAt.IsZero() {
			t.Errorf("log --json row %d: created_at is zero", row.ID)
		}
	}

	t.Run("every kind sent", func(t *testing.T) {
		sent := countBy(rows, func(r logRow) string {
			if r.Status != "sent" {
				return ""
			}
			return r.Kind
		})
		for _, k := range []string{"sms", "email", "slack"} {
			if sent[k] == 0 {
				t.Errorf("no %s delivery has status sent; statuses by kind: %v", k, countBy(rows, func(r logRow) string { return r.Kind + "/" + r.Status }))
			}
		}
		for _, row := range rows {
			if row.Status == "sent" && (row.ProviderID == "" || row.Attempts != 1) {
				t.Errorf("sent row %d (%s to %s): provider_id %q, attempts %d; want a provider id after 1 attempt", row.ID, row.Kind, row.Subscriber, row.ProviderID, row.Attempts)
			}
		}
	})

	t.Run("who was told", func(t *testing.T) {
		// The incident is in Wales only: the Welsh clinicians get SMS, the
		// response team gets Slack, and nobody else is paged about it.
		got := map[string]string{}
		for _, row := range rows {
			if row.Trigger == "incident:INC-1:1" {
				got[row.Subscriber+"/"+row.Kind] = row.Status
			}
		}
		want := map[string]string{"dr-morgan/sms": "sent", "dr-hughes/sms": "sent", "response-team/slack": "sent"}
		for k, st := range want {
			if got[k] != st {
				t.Errorf("incident delivery %s: status %q, want %q (all: %v)", k, got[k], st, got)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected incident delivery %s (%s): the incident affects Wales only", k, got[k])
			}
		}
		// dr-hughes's phone is written 07400 123411 in the example: the log
		// shows the E.164 form that was sent to.
		for _, row := range rows {
			if row.Subscriber == "dr-hughes" && row.Address != "+447400123411" {
				t.Errorf("dr-hughes address %q, want +447400123411", row.Address)
			}
		}
	})

	t.Run("suppressed no_address", func(t *testing.T) {
		// The example gives official-scotland (a minister audience member)
		// no email: the briefing must log her as not told, and why.
		var found bool
		for _, row := range rows {
			if row.Status != "suppressed" {
				continue
			}
			if row.Reason == "" {
				t.Errorf("suppressed row %d (%s) has no reason", row.ID, row.Subscriber)
			}
			if row.Reason == "no_address" {
				found = true
				if row.Address != "" || row.Attempts != 0 || row.ProviderID != "" {
					t.Errorf("suppressed row %d: address %q, attempts %d, provider_id %q; want none (nothing was sent)", row.ID, row.Address, row.Attempts, row.ProviderID)
				}
			}
		}
		if !found {
			t.Errorf("no suppressed row with reason no_address in the walkthrough; statuses: %v",
				countBy(rows, func(r logRow) string { return r.Subscriber + "/" + r.Status + "/" + r.Reason }))
		}
	})

	t.Run("csv matches json", func(t *testing.T) {
		r := h.mustRun("log", "--csv")
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil {
			t.Fatalf("log --csv is not CSV: %v\n%s", err, r.stdout)
		}
		if len(recs) != len(rows)+1 {
			t.Fatalf("log --csv has %d data rows, log --json %d", len(recs)-1, len(rows))
		}
		header := recs[0]
		// The same columns: every key any JSON line has is a CSV column,
		// and every CSV column is a key of the JSON lines.
		jsonKeys := map[string]bool{}
		for _, row := range rows {
			for k := range row.keys {
				jsonKeys[k] = true
			}
		}
		for k := range jsonKeys {
			if !slices.Contains(header, k) {
				t.Errorf("log --json has key %q that log --csv has no column for (csv header %v)", k, header)
			}
		}
		for _, c := range header {
			if !jsonKeys[c] {
				t.Errorf("log --csv column %q is never a key in log --json", c)
			}
		}
		col := map[string]int{}
		for i, c := range header {
			col[c] = i
		}
		for i, row := range rows {
			rec := recs[i+1]
			cell := func(name string) string {
				if j, ok := col[name]; ok {
					return rec[j]
				}
				return ""
			}
			checks := map[string]string{"id": strconv.FormatInt(row.ID, 10), "kind": row.Kind, "channel": row.Channel,
				"subscriber": row.Subscriber, "address": row.Address, "status": row.Status, "reason": row.Reason,
				"attempts": strconv.Itoa(row.Attempts), "provider_id": row.ProviderID, "trigger": row.Trigger}
			for name, want := range checks {
				if got := cell(name); got != want {
					t.Errorf("csv row %d column %s = %q, json has %q", i+1, name, got, want)
				}
			}
			if ct, err := time.Parse(time.RFC3339Nano, cell("created_at")); err != nil || !ct.Equal(row.CreatedAt) {
				t.Errorf("csv row %d created_at %q, json has %s", i+1, cell("created_at"), row.CreatedAt)
			}
		}
	})

	t.Run("show-body", func(t *testing.T) {
		r := h.mustRun("log", "--show-body")
		bodies := h.mustRun("log", "--json", "--show-body")
		var withText int
		for _, line := range strings.Split(strings.TrimSpace(bodies.stdout), "\n") {
			var le struct {
				Subscriber, Status, Subject, Text string
			}
			if err := json.Unmarshal([]byte(line), &le); err != nil {
				t.Fatal(err)
			}
			if le.Status == "suppressed" {
				continue
			}
			if le.Text == "" {
				t.Errorf("log --json --show-body: %s has no text", le.Subscriber)
				continue
			}
			withText++
			// Each rendered text (its first line, as printed indented) is in
			// the human output.
			first := strings.SplitN(le.Text, "\n", 2)[0]
			if !strings.Contains(r.stdout, first) {
				t.Errorf("log --show-body does not print %s's text %q", le.Subscriber, first)
			}
			if le.Subject != "" && !strings.Contains(r.stdout, "subject: "+le.Subject) {
				t.Errorf("log --show-body does not print %s's subject %q", le.Subscriber, le.Subject)
			}
		}
		if withText == 0 {
			t.Fatal("no delivery has a rendered text")
		}
		for _, want := range []string{"--- text ---", "--- html ---", "111 clinical system down", "phone the duty clinician"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("log --show-body output lacks %q", want)
			}
		}
	})
}

func keysOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCLI_Brief_SameMinuteOnce proves a briefing run twice within the same
// minute (a retried cron fire, an operator pressing twice) plans one set
// of deliveries; a later minute is a new briefing.
func TestCLI_Brief_SameMinuteOnce(t *testing.T) {
	h := exampleHarness(t)
	first := h.mustRun("brief", "ministers-daily")
	rows1 := h.logRows()
	if len(rows1) == 0 {
		t.Fatalf("the first briefing planned nothing:\n%s", first.stdout)
	}
	h.setNow(testEpoch().Add(40 * time.Second)) // same minute
	second := h.mustRun("brief", "ministers-daily")
	if !strings.Contains(second.stdout, "already sent") {
		t.Errorf("second brief in the same minute does not say it was already sent:\n%s", second.stdout)
	}
	rows2 := h.logRows()
	if len(rows2) != len(rows1) {
		t.Errorf("after the second brief in the same minute: %d deliveries, want %d", len(rows2), len(rows1))
	}
	if n := len(countBy(rows2, func(r logRow) string { return r.Trigger })); n != 1 {
		t.Errorf("%d triggers after two briefs in one minute, want 1", n)
	}
	perPerson := countBy(rows2, func(r logRow) string { return r.Subscriber + "/" + r.Channel })
	for k, n := range perPerson {
		if n != 1 {
			t.Errorf("%s has %d deliveries, want 1", k, n)
		}
	}

	h.setNow(testEpoch().Add(time.Minute))
	h.mustRun("brief", "ministers-daily")
	if got := len(h.logRows()); got != 2*len(rows1) {
		t.Errorf("a briefing in the next minute: %d deliveries in all, want %d", got, 2*len(rows1))
	}
}

// TestCLI_Send_KeyOnce proves `send --key` never sends twice, even when
// repeated minutes later.
func TestCLI_Send_KeyOnce(t *testing.T) {
	h := exampleHarness(t)
	args := []string{"send", "--audience", "ministers", "--channels", "ministers-email", "--subject", "Paper processes",
		"--body", "Use paper prescriptions until further notice", "--key", "k1"}
	h.mustRun(args...)
	rows1 := h.logRows()
	if len(rows1) == 0 {
		t.Fatal("send planned nothing")
	}
	for _, at := range []time.Duration{0, 5 * time.Minute} {
		h.setNow(testEpoch().Add(at))
		r := h.mustRun(args...)
		if !strings.Contains(r.stdout, "already sent") {
			t.Errorf("send --key k1 again (+%s): stdout does not say it was already sent:\n%s", at, r.stdout)
		}
	}
	rows2 := h.logRows()
	if len(rows2) != len(rows1) {
		t.Errorf("after repeating send --key k1: %d deliveries, want %d", len(rows2), len(rows1))
	}
	for k, n := range countBy(rows2, func(r logRow) string { return r.Subscriber + "/" + r.Channel }) {
		if n != 1 {
			t.Errorf("%s has %d deliveries, want 1", k, n)
		}
	}
	for _, row := range rows2 {
		if row.Trigger != "send:k1" {
			t.Errorf("row %d trigger %q, want send:k1", row.ID, row.Trigger)
		}
	}
}

// TestCLI_Send_DocumentedExample runs the example printed by `crier send
// --help` on the example config. An ad-hoc message to the clinicians must
// either reach them or be refused with a message naming the audience; it
// must not "succeed" having planned nothing.
func TestCLI_Send_DocumentedExample(t *testing.T) {
	h := exampleHarness(t)
	r := h.run("send", "--audience", "clinicians", "--channels", "clinician-sms", "--body", "Use paper prescriptions until further notice")
	rows := h.logRows()
	if r.code == 0 && len(rows) == 0 {
		t.Errorf("send --audience clinicians exited 0 but planned no delivery (the audience has incident_nations: true and a "+
			"broadcast has no incident nations):\n%s%s", r.stdout, r.stderr)
	}
	if r.code != 0 && !strings.Contains(r.stderr, "clinicians") {
		t.Errorf("send refused without naming the audience:\n%s", r.stderr)
	}
}

// TestCLI_IncidentOpen_BadInput proves a rejected incident names the
// field and writes nothing: no incident, no delivery.
func TestCLI_IncidentOpen_BadInput(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		field string
	}{
		{"missing title", []string{"--severity", "critical", "--impact", walkthroughImpact}, "title"},
		{"severity urgent", []string{"--title", "111 down", "--severity", "urgent"}, "severity"},
		{"impact nonsense", []string{"--title", "111 down", "--severity", "critical", "--impact", "nonsense"}, "impact"},
		{"impact unknown nation", []string{"--title", "111 down", "--severity", "critical", "--impact", "Referrals@atlantis=outage"}, "nation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := exampleHarness(t)
			r := h.run(append([]string{"incident", "open"}, tc.args...)...)
			if r.code == 0 {
				t.Fatalf("exit 0 for bad input; stdout:\n%s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.field) {
				t.Errorf("stderr does not name %q:\n%s", tc.field, r.stderr)
			}
			if strings.Contains(r.stderr, "configuration") {
				t.Errorf("a bad --%s is reported as a configuration problem:\n%s", tc.field, r.stderr)
			}
			if list := h.mustRun("incident", "list", "--all", "--json"); strings.TrimSpace(list.stdout) != "null" && strings.TrimSpace(list.stdout) != "[]" {
				t.Errorf("an incident was stored after a rejected open: %s", list.stdout)
			}
			if rows := h.logRows(); len(rows) != 0 {
				t.Errorf("%d deliveries written after a rejected open", len(rows))
			}
		})
	}
}

// TestCLI_IncidentUpdate_NotFound proves an unknown incident ID is a clear
// failure that writes nothing.
func TestCLI_IncidentUpdate_NotFound(t *testing.T) {
	h := exampleHarness(t)
	r := h.run("incident", "update", "INC-99", "--text", "anything")
	if r.code == 0 {
		t.Fatalf("incident update INC-99: exit 0:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "INC-99") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("stderr does not say INC-99 was not found:\n%s", r.stderr)
	}
	if rows := h.logRows(); len(rows) != 0 {
		t.Errorf("%d deliveries written for a missing incident", len(rows))
	}
}

// TestCLI_Demo_AllKinds proves `crier demo` replays the scripted incident
// on sandbox channels and shows a delivery of every kind.
func TestCLI_Demo_AllKinds(t *testing.T) {
	h := exampleHarness(t)
	var out, errb syncBuffer
	code := run(t.Context(), []string{"demo"}, h.env(&out, &errb))
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	assertNoPanic(t, result{args: []string{"demo"}, stdout: out.String(), stderr: errb.String()})
	stdout := out.String()
	for _, k := range []string{"sms", "email", "slack"} {
		if !strings.Contains(stdout, "["+k+" to ") {
			t.Errorf("demo shows no %s message", k)
		}
		var sent bool
		for _, line := range strings.Split(stdout, "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && f[1] == k && f[4] == "sent" {
				sent = true
			}
		}
		if !sent {
			t.Errorf("demo's delivery log has no sent %s row:\n%s", k, stdout)
		}
	}
	if !strings.Contains(stdout, "totals:") {
		t.Errorf("demo prints no totals:\n%s", stdout)
	}
}
