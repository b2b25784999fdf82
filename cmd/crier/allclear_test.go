package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
)

// bodyRow is one line of `crier log --json --show-body`.
type bodyRow struct {
	Subscriber, Channel, Kind, Status, Reason, Detail, Trigger, Text string
}

// triggerRows reads the log of one trigger with bodies, keyed by subscriber.
func (h *harness) triggerRows(trigger string) map[string]bodyRow {
	h.t.Helper()
	r := h.mustRun("log", "--json", "--show-body", "--trigger", trigger)
	out := map[string]bodyRow{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var row bodyRow
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			h.t.Fatalf("log --json --show-body: %v\n%s", err, line)
		}
		out[row.Subscriber] = row
	}
	return out
}

// statusesOf sums rows up as subscriber → "status reason".
func statusesOf(rows map[string]bodyRow) map[string]string {
	out := map[string]string{}
	for k, r := range rows {
		out[k] = strings.TrimSpace(r.Status + " " + r.Reason)
	}
	return out
}

// openTwoNations opens the incident on h: referrals out in Wales,
// emergency prescriptions degraded in England.
func openTwoNations(h *harness, severity string) {
	h.t.Helper()
	h.mustRun("incident", "open", "--title", "111 clinical system unavailable", "--severity", severity,
		"--impact", "Referrals@wales=outage:Phone the duty clinician",
		"--impact", "Emergency prescriptions@england=degraded:Use paper FP10 prescriptions")
}

// TestCLI_AllClear_ExampleConfig is the story on the example
// config: clinicians in Wales and England are told of an outage; an update
// restores Wales; then the incident is resolved. Everyone told of the
// outage hears the update and the resolution, in their own language, and
// the SMS says what was restored; the pre-flight of the resolution lists
// them before it is sent.
func TestCLI_AllClear_ExampleConfig(t *testing.T) {
	h := exampleHarness(t)
	openTwoNations(h, "critical")
	told := []string{"dr-hughes", "dr-morgan", "dr-patel"} // Wales (en), Wales (cy), England
	open := h.triggerRows("incident:INC-1:1")
	if got := slices.Sorted(maps.Keys(open)); !slices.Equal(got, append(slices.Clone(told), "response-team")) {
		t.Fatalf("the open alert reached %v (%v), want the clinicians in Wales and England and the response team", got, statusesOf(open))
	}

	h.setNow(testEpoch().Add(20 * time.Minute))
	h.mustRun("incident", "update", "INC-1", "--impact", "Referrals@wales=restored", "--text", "Referrals are back in Wales.")
	update := h.triggerRows("incident:INC-1:2")
	want := map[string]string{"dr-hughes": "sent", "dr-morgan": "sent", "dr-patel": "sent", "response-team": "sent"}
	if got := statusesOf(update); !maps.Equal(got, want) {
		t.Fatalf("the update: %v, want %v", got, want)
	}
	for who, texts := range map[string][]string{
		"dr-hughes": {"Update INC-1", "Restored: Referrals (Wales).", "Wales: no services disrupted."},
		"dr-morgan": {"Diweddariad INC-1", "Adferwyd: Referrals (Cymru).", "Cymru: dim tarfu ar wasanaethau."},
		"dr-patel":  {"Update INC-1", "Still affected: Emergency prescriptions (England): Degraded."},
	} {
		for _, s := range texts {
			if !strings.Contains(update[who].Text, s) {
				t.Errorf("%s's update lacks %q:\n%s", who, s, update[who].Text)
			}
		}
	}
	if strings.Contains(update["dr-patel"].Text, "Restored") {
		t.Errorf("dr-patel (England) is told nothing was restored in Wales:\n%s", update["dr-patel"].Text)
	}

	// Before resolving: the pre-flight lists who the resolution reaches.
	r := h.mustRun("preview", "--incident", "INC-1", "--event", "resolve", "--summary", "--json")
	var pf dispatch.Preflight
	if err := json.Unmarshal([]byte(r.stdout), &pf); err != nil {
		t.Fatalf("preview --event resolve --summary --json: %v\n%s", err, r.stdout)
	}
	var follow []string
	for _, f := range pf.FollowUps {
		follow = append(follow, f.Subscriber+"/"+f.Rule)
	}
	slices.Sort(follow)
	if want := []string{"dr-hughes/clinicians-sms", "dr-morgan/clinicians-sms", "dr-patel/clinicians-sms"}; !slices.Equal(follow, want) {
		t.Errorf("pre-flight of the resolution: follow-ups %v, want %v", follow, want)
	}
	if sms := pf.Channels["clinician-sms"]; sms == nil || sms.Messages != 3 || sms.ByLocale["cy"] != 1 {
		t.Errorf("pre-flight of the resolution on clinician-sms: %+v, want 3 messages, 1 in Welsh", sms)
	}
	r = h.mustRun("preview", "--incident", "INC-1", "--event", "resolve", "--summary")
	if !strings.Contains(r.stdout, "Told before") || !strings.Contains(r.stdout, "dr-morgan") {
		t.Errorf("preview --event resolve --summary does not list those told before:\n%s", r.stdout)
	}
	if rows := h.logRows("--trigger", "incident:INC-1:3"); len(rows) != 0 {
		t.Fatalf("the pre-flight planned %d deliveries", len(rows))
	}

	h.setNow(testEpoch().Add(40 * time.Minute))
	h.mustRun("incident", "resolve", "INC-1", "--text", "Service restored in all four nations")
	resolve := h.triggerRows("incident:INC-1:3")
	if got := statusesOf(resolve); !maps.Equal(got, want) {
		t.Fatalf("the resolution: %v, want %v", got, want)
	}
	for who, s := range map[string]string{"dr-hughes": "RESOLVED:", "dr-morgan": "WEDI'I DDATRYS:", "dr-patel": "Restored: Emergency prescriptions (England)."} {
		if !strings.Contains(resolve[who].Text, s) {
			t.Errorf("%s's resolution lacks %q:\n%s", who, s, resolve[who].Text)
		}
	}
}

// TestCLI_AllClear_PolicyChanged: the config changes after the alert.
// Downgraded below the rule's min_severity, the incident's update still
// reaches the clinicians told of it; once the rule no longer sends
// resolutions, each of them gets a suppressed row saying so; a clinician
// removed from the config gets one too.
func TestCLI_AllClear_PolicyChanged(t *testing.T) {
	h := exampleHarness(t)
	openTwoNations(h, "major")
	h.mustRun("incident", "update", "INC-1", "--severity", "minor", "--text", "Mostly working again.")
	update := h.triggerRows("incident:INC-1:2")
	want := map[string]string{"dr-hughes": "sent", "dr-morgan": "sent", "dr-patel": "sent", "response-team": "sent"}
	if got := statusesOf(update); !maps.Equal(got, want) {
		t.Fatalf("the update of a downgraded incident: %v, want %v", got, want)
	}

	yaml := exampleYAML(t)
	for old, repl := range map[string]string{
		"  clinicians-sms:\n    on: [open, update, resolve]": "  clinicians-sms:\n    on: [open, update]",
		"    - id: dr-patel\n":                               "    - id: dr-patel-gone\n",
	} {
		if !strings.Contains(yaml, old) {
			t.Fatalf("the example config has no %q", old)
		}
		yaml = strings.Replace(yaml, old, repl, 1)
	}
	h.write("config.yaml", yaml)
	h.mustRun("incident", "resolve", "INC-1")
	resolve := h.triggerRows("incident:INC-1:3")
	want = map[string]string{"dr-hughes": "suppressed rule_not_on_event", "dr-morgan": "suppressed rule_not_on_event",
		"dr-patel": "suppressed subscriber_removed", "response-team": "sent"}
	if got := statusesOf(resolve); !maps.Equal(got, want) {
		t.Fatalf("the resolution: %v, want %v", got, want)
	}
	if d := resolve["dr-morgan"].Detail; !strings.Contains(d, "clinicians-sms does not send resolve events") {
		t.Errorf("dr-morgan's row says %q", d)
	}
}
