package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

func TestPlanner_Plan_Idempotent(t *testing.T) {
	briefing := func(key string) Request {
		return Request{Key: key, Kind: "briefing", Name: "morning", BriefingName: "Morning briefing",
			Targets: []Target{{Audience: "everyone", Channels: []string{"email", "slack"}, Event: templates.EventBriefing}}}
	}
	tests := []struct {
		name string
		// first and second are planned in turn; restart reopens the store
		// and builds a new planner between them, with the clock moved on.
		first, second Request
		restart       bool
		advance       time.Duration
		wantRows      int
	}{
		{"same key twice", message("send:k1", "everyone", "sms", "email"), message("send:k1", "everyone", "sms", "email"), false, 0, 6},
		{"same key, other targets the second time", message("send:k2", "everyone", "sms"), message("send:k2", "everyone", "sms", "email", "slack"), false, time.Second, 3},
		{"cron occurrence fired twice", briefing("briefing:morning:2026-01-15T08:00Z"), briefing("briefing:morning:2026-01-15T08:00Z"), false, 0, 6},
		{"restart inside the same minute", briefing("briefing:morning:2026-01-15T08:00Z"), briefing("briefing:morning:2026-01-15T08:00Z"), true, 40 * time.Second, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, path := openStore(t, clk)
			addSubscribers(t, st, person("ann"), person("bob"), person("cat", func(s *subscribers.Subscriber) { s.Roles = []string{"minister"} }))
			tmpl := loadTemplates(t, nil)
			p := newPlanner(clk, tmpl, RetryPolicy{})
			first := plan(t, p, st, tt.first)
			if !first.Created {
				t.Fatalf("first Plan: Created = false")
			}
			before := logRows(t, st, "")
			if len(before) != tt.wantRows {
				t.Fatalf("first Plan wrote %d rows, want %d", len(before), tt.wantRows)
			}
			clk.Add(tt.advance)
			if tt.restart {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				st = openAt(t, path, clk)
				p = newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
			}
			second := plan(t, p, st, tt.second)
			if second.Created {
				t.Errorf("second Plan: Created = true, want false")
			}
			if second.TriggerID != first.TriggerID {
				t.Errorf("second Plan: trigger %d, want the first one's %d", second.TriggerID, first.TriggerID)
			}
			after := logRows(t, st, "")
			if len(after) != len(before) {
				t.Errorf("rows after the second Plan: %d, want %d unchanged", len(after), len(before))
			}
			for k, b := range before {
				if a := after[k]; a.ID != b.ID || a.UpdatedAt != b.UpdatedAt || a.Text != b.Text {
					t.Errorf("row %s changed by the second Plan: %+v → %+v", k, b, a)
				}
			}
		})
	}
}

func TestPlanner_Plan_SameSubscriberThroughTwoTargets(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	// ann is a clinician in Wales: both audiences hold her.
	addSubscribers(t, st, person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Nations = []string{"scotland"} }))
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	req := message("send:two-targets", "clinicians", "sms", "email")
	req.Targets = append(req.Targets, Target{Audience: "wales", Channels: []string{"sms", "slack"}, Event: templates.EventMessage})
	out := plan(t, p, st, req)
	rows := logRows(t, st, "send:two-targets")
	want := []string{"ann/sms", "ann/email", "ann/slack", "bob/sms", "bob/email"}
	if len(rows) != len(want) {
		t.Errorf("rows = %d, want %d (one per subscriber × channel): %v", len(rows), len(want), keys(rows))
	}
	for _, k := range want {
		if _, ok := rows[k]; !ok {
			t.Errorf("no row for %s", k)
		}
	}
	if out.Queued != len(want) || out.ByChannel["sms"] != 2 {
		t.Errorf("Outcome = %+v, want %d queued and 2 on sms", out, len(want))
	}
}

func keys(m map[string]store.LogEntry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPlanner_Plan_AllOrNothing(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		req       Request
		want      string // in the error
		missing   bool   // the error is a templates.MissingError
		filler    int    // more subscribers before the failing one (several render batches)
		zedLocale string // zed's language (default cy)
	}{
		{
			name: "locale without the template",
			// Nobody wrote templates in zed's language: planning stops
			// rather than silently sending English (the Welsh Language
			// Standards' rule, whatever the language).
			req: Request{Key: "briefing:sms:1", Kind: "briefing", Name: "sms", BriefingName: "Evening",
				Targets: []Target{{Audience: "everyone", Channels: []string{"email", "sms"}, Event: templates.EventBriefing}}},
			want:      `locale "gd"`,
			missing:   true,
			zedLocale: "gd",
		},
		{
			name:      "template fails to execute",
			overrides: map[string]string{"cy/message.tmpl": `{{define "message.sms.text"}}{{index .Impacts 3}}{{end}}`},
			req:       message("send:broken", "everyone", "email", "sms"),
			want:      "index",
		},
		{
			name:      "failure after several batches were written",
			overrides: map[string]string{"cy/message.tmpl": `{{define "message.sms.text"}}{{index .Impacts 3}}{{end}}`},
			req:       message("send:broken-late", "everyone", "sms", "email"),
			want:      "index",
			filler:    3 * planBatchSize,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			// zed sorts last: ann's and bob's deliveries are written before
			// zed's render fails.
			zedLocale := tt.zedLocale
			if zedLocale == "" {
				zedLocale = "cy"
			}
			people := []subscribers.Subscriber{person("ann"), person("bob"), person("zed", func(s *subscribers.Subscriber) { s.Locale = zedLocale })}
			for i := range tt.filler {
				people = append(people, person(fmt.Sprintf("m%04d", i)))
			}
			addSubscribers(t, st, people...)
			p := newPlanner(clk, loadTemplates(t, tt.overrides), RetryPolicy{})
			_, err := p.Plan(context.Background(), st, tt.req)
			if err == nil {
				t.Fatal("Plan succeeded, want a render error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "zed") || !strings.Contains(err.Error(), tt.req.Key) {
				t.Errorf("error %q should name the trigger, the subscriber zed and %q", err, tt.want)
			}
			if got := templates.IsMissing(err); got != tt.missing {
				t.Errorf("IsMissing = %v, want %v (%v)", got, tt.missing, err)
			}
			if c := counts(t, st); len(c) != 0 {
				t.Errorf("deliveries after a failed Plan: %v, want none", c)
			}
			// The trigger was rolled back too: the same key plans afresh once
			// the templates are fixed.
			fixed := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
			if tt.zedLocale != "" {
				// The fix for a language nobody writes in: record one that is.
				addSubscribers(t, st, person("zed", func(s *subscribers.Subscriber) { s.Locale = "cy" }))
			}
			req := tt.req
			req.Targets = []Target{{Audience: "everyone", Channels: []string{"email"}, Event: req.Targets[0].Event}}
			out := plan(t, fixed, st, req)
			if !out.Created || out.Queued != len(people) {
				t.Errorf("Plan after the fix: %+v, want a new trigger with %d deliveries", out, len(people))
			}
		})
	}
}

func TestPlanner_Plan_BadRequest(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"no key", message("", "everyone", "sms"), "no key"},
		{"unknown audience", message("send:x", "nobody", "sms"), `audience "nobody"`},
		{"unknown channel", message("send:x", "everyone", "pager"), `channel "pager"`},
		{"no targets", Request{Key: "send:x", Kind: "send"}, "no audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann"))
			p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
			_, err := p.Plan(context.Background(), st, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Plan error = %v, want one containing %q", err, tt.want)
			}
			if c := counts(t, st); len(c) != 0 {
				t.Errorf("deliveries after a rejected Plan: %v", c)
			}
		})
	}
}

func TestPlanner_Plan_Suppressed(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st,
		person("ann"),
		person("bob", func(s *subscribers.Subscriber) { s.Phone = "" }),
		person("cat", func(s *subscribers.Subscriber) { s.OptedOut = []string{"sms"} }),
		person("dan", func(s *subscribers.Subscriber) { s.Phone = "+447400999999" }),
	)
	// dan's number sent STOP earlier.
	if err := st.OptOut(context.Background(), "sms", "+447400999999", "", "inbound"); err != nil {
		t.Fatal(err)
	}
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	out := plan(t, p, st, message("send:suppress", "everyone", "sms", "email"))
	rows := logRows(t, st, "send:suppress")
	tests := []struct {
		row, status, reason string
		body                bool
	}{
		{"ann/sms", store.StatusQueued, "", true},
		{"bob/sms", store.StatusSuppressed, "no_address", false},
		{"cat/sms", store.StatusSuppressed, "opted_out", false},
		{"dan/sms", store.StatusSuppressed, "opted_out", false},
		{"cat/email", store.StatusQueued, "", true}, // the opt-out is per kind
		{"dan/email", store.StatusQueued, "", true},
	}
	for _, tt := range tests {
		r, ok := rows[tt.row]
		if !ok {
			t.Errorf("%s: no row; a suppressed delivery must still be logged", tt.row)
			continue
		}
		if r.Status != tt.status || r.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.row, r.Status, r.Reason, tt.status, tt.reason)
		}
		if got := r.Text != ""; got != tt.body {
			t.Errorf("%s: has body = %v, want %v", tt.row, got, tt.body)
		}
		if tt.status == store.StatusSuppressed && r.Detail == "" {
			t.Errorf("%s: suppressed without a detail", tt.row)
		}
	}
	if out.Suppressed != 3 || out.Queued != 5 || out.ByChannel["sms"] != 1 {
		t.Errorf("Outcome = %+v, want 3 suppressed, 5 queued (1 on sms)", out)
	}
}

func TestPlanner_Plan_QuietHours(t *testing.T) {
	// 23:30 in London (GMT in January); ann's quiet hours end at 07:00.
	night := time.Date(2026, 1, 15, 23, 30, 0, 0, time.UTC)
	end := time.Date(2026, 1, 16, 7, 0, 0, 0, time.UTC)
	// In July London is on BST: 23:30 BST is 22:30 UTC; 07:00 BST is 06:00 UTC.
	summer := time.Date(2026, 7, 15, 22, 30, 0, 0, time.UTC)
	summerEnd := time.Date(2026, 7, 16, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		now        time.Time
		critical   bool
		wantReason string
		wantNext   time.Time
		deferred   int
	}{
		{"non-critical is deferred to the end", night, false, "quiet_hours", end, 1},
		{"non-critical in summer time", summer, false, "quiet_hours", summerEnd, 1},
		{"critical goes now", night, true, "", night, 0},
		{"outside quiet hours goes now", t0, false, "", t0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(tt.now)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann", func(s *subscribers.Subscriber) {
				s.QuietHours = &subscribers.QuietHours{Start: "22:00", End: "07:00"}
			}))
			retry := RetryPolicy{Deadline: time.Hour}
			p := newPlanner(clk, loadTemplates(t, nil), retry)
			req := message("send:quiet", "everyone", "sms")
			req.Critical = tt.critical
			out := plan(t, p, st, req)
			r := logRows(t, st, "")["ann/sms"]
			if r.Status != store.StatusQueued || r.Reason != tt.wantReason {
				t.Errorf("row %s/%s, want queued/%q", r.Status, r.Reason, tt.wantReason)
			}
			if !r.NextAttempt.Equal(tt.wantNext) {
				t.Errorf("next attempt %v, want %v", r.NextAttempt, tt.wantNext)
			}
			if out.Deferred != tt.deferred || out.Queued != 1 {
				t.Errorf("Outcome = %+v, want 1 queued, %d deferred", out, tt.deferred)
			}
			// A deferred delivery is not sent before quiet hours end, and
			// its deadline runs from then, not from planning.
			ch := newTestChannel("sms", "sms", nil)
			d := newDispatcher(st, clk, retry, ch)
			drain(t, d, clk)
			if n := len(ch.messages()); (tt.deferred == 0) != (n == 1) {
				t.Fatalf("sent %d messages at %v", n, clk.Now())
			}
			if tt.deferred > 0 {
				clk.Set(tt.wantNext)
				drain(t, d, clk)
				if got := logRows(t, st, "")["ann/sms"]; got.Status != store.StatusSent {
					t.Errorf("after quiet hours: %s/%s, want sent", got.Status, got.Reason)
				}
			}
		})
	}
}

func TestPlanner_Preview_WritesNothing(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Phone = "" }))
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	req := message("send:preview", "everyone", "sms")
	got, err := p.Preview(context.Background(), st, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Text == "" || got[1].Reason != "no_address" {
		t.Errorf("Preview = %+v", got)
	}
	if c := counts(t, st); len(c) != 0 {
		t.Errorf("Preview wrote deliveries: %v", c)
	}
	if out := plan(t, p, st, req); !out.Created {
		t.Error("Preview left a trigger behind: Plan did not create one")
	}
}

func TestPlanner_Plan_RenderGroups(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		// want maps each subscriber to what its SMS must contain and not.
		has, hasNot map[string]string
		// same lists pairs of subscribers whose messages are identical.
		same [][2]string
	}{
		{
			name: "shared templates: one message per locale and nations",
			has: map[string]string{"ann": "Wales", "bob": "Wales", "cyn": "Cymru", "eve": "England",
				"ffi": "Wales"},
			hasNot: map[string]string{"ann": "England", "eve": "Wales"},
			same:   [][2]string{{"ann", "bob"}, {"ann", "ffi"}},
		},
		{
			name:      "a template naming the recipient: one message each",
			overrides: map[string]string{"en/alert.tmpl": `{{define "alert.sms.text"}}{{.RecipientName}}: {{.Title}}{{end}}`},
			has:       map[string]string{"ann": "Person ann: ", "bob": "Person bob: ", "eve": "Person eve: ", "cyn": "Cymru"},
		},
		{
			name:      "times are in each recipient's zone",
			overrides: map[string]string{"en/alert.tmpl": `{{define "alert.sms.text"}}{{.Title}} at {{clock .UpdatedAt}}{{end}}`},
			has:       map[string]string{"ann": "at 14:00", "bob": "at 14:00", "ffi": "at 15:00"},
			same:      [][2]string{{"ann", "bob"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st,
				person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Phone = "+447400000002" }),
				person("cyn", func(s *subscribers.Subscriber) { s.Locale = "cy" }),
				person("eve", func(s *subscribers.Subscriber) { s.Nations = []string{"england"} }),
				// Another zone: the same words, rendered separately.
				person("ffi", func(s *subscribers.Subscriber) { s.TimeZone = "Europe/Paris" }))
			inc := incident(t, st, t0)
			inc.Impacts = append(inc.Impacts, incidentsImpact("england"))
			p := newPlanner(clk, loadTemplates(t, tt.overrides), RetryPolicy{})
			plan(t, p, st, Request{Key: "incident:INC-1:1", Kind: "incident", Name: "open", Incident: inc,
				Targets: []Target{{Audience: "everyone", Channels: []string{"sms"}, Event: templates.EventAlert}}})
			rows := logRows(t, st, "")
			for id, want := range tt.has {
				if got := rows[id+"/sms"].Text; !strings.Contains(got, want) {
					t.Errorf("%s: %q does not contain %q", id, got, want)
				}
			}
			for id, not := range tt.hasNot {
				if got := rows[id+"/sms"].Text; strings.Contains(got, not) {
					t.Errorf("%s: %q contains %q", id, got, not)
				}
			}
			for _, pair := range tt.same {
				if a, b := rows[pair[0]+"/sms"].Text, rows[pair[1]+"/sms"].Text; a != b {
					t.Errorf("%s and %s got different messages:\n%q\n%q", pair[0], pair[1], a, b)
				}
			}
		})
	}
}
