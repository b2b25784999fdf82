package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

func TestDispatcher_Drain_Outcomes(t *testing.T) {
	temporary := func(reason channels.Reason, after time.Duration) script {
		return func(int, channels.Message) (channels.Receipt, error) {
			return channels.Receipt{}, channels.Temporary(reason, "503", after, errScripted)
		}
	}
	tests := []struct {
		name   string
		retry  RetryPolicy
		rnd    int64 // fixedRand value: 0 = least jitter, -1 = most
		script script
		rounds int // drains; before each later one the clock moves to the row's next attempt
		// want: the row after the last round; next is relative to the
		// clock at the last round (only for queued rows).
		status, reason string
		attempts       int
		sends          int // requests the channel got, when not attempts
		next           time.Duration
		detail         string
	}{
		{name: "accepted", status: store.StatusSent, attempts: 1, detail: "accepted"},
		{name: "temporary, least jitter", retry: RetryPolicy{InitialBackoff: 10 * time.Second}, rnd: 0, script: temporary(channels.ReasonServer, 0),
			status: store.StatusQueued, reason: "server", attempts: 1, next: 5 * time.Second, detail: "scripted failure"},
		{name: "temporary, most jitter", retry: RetryPolicy{InitialBackoff: 10 * time.Second}, rnd: -1, script: temporary(channels.ReasonServer, 0),
			status: store.StatusQueued, reason: "server", attempts: 1, next: 10 * time.Second},
		{name: "second failure doubles the step", retry: RetryPolicy{InitialBackoff: 10 * time.Second}, rnd: -1, script: temporary(channels.ReasonNetwork, 0), rounds: 2,
			status: store.StatusQueued, reason: "network", attempts: 2, next: 20 * time.Second},
		// A 429 is the channel's, not the recipient's: the lane pauses and
		// the attempt is given back.
		{name: "never sooner than Retry-After", retry: RetryPolicy{InitialBackoff: 10 * time.Second}, rnd: -1, script: temporary(channels.ReasonRateLimited, 2*time.Minute),
			status: store.StatusQueued, reason: "rate_limited", attempts: 0, sends: 1, next: 2 * time.Minute},
		{name: "unclassified error is retried", retry: RetryPolicy{InitialBackoff: 10 * time.Second},
			script: func(int, channels.Message) (channels.Receipt, error) {
				return channels.Receipt{}, errors.New("connection reset")
			},
			status: store.StatusQueued, reason: "unknown", attempts: 1, next: 5 * time.Second},
		{name: "attempts exhausted", retry: RetryPolicy{MaxAttempts: 3}, script: temporary(channels.ReasonServer, 0), rounds: 3,
			status: store.StatusExpired, reason: "server", attempts: 3, detail: "gave up after 3 attempts"},
		{name: "next retry past the deadline", retry: RetryPolicy{InitialBackoff: 4 * time.Minute, Deadline: time.Minute}, script: temporary(channels.ReasonServer, 0),
			status: store.StatusExpired, reason: "server", attempts: 1, detail: "deadline"},
		{name: "Retry-After past the deadline", retry: RetryPolicy{Deadline: time.Hour}, script: temporary(channels.ReasonRateLimited, 2*time.Hour),
			status: store.StatusExpired, reason: "rate_limited", attempts: 1, detail: "deadline"},
		{name: "permanent", script: func(int, channels.Message) (channels.Receipt, error) {
			return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "21211", errScripted)
		}, status: store.StatusFailed, reason: "bad_address", attempts: 1, detail: "21211"},
		{name: "fails then succeeds", retry: RetryPolicy{InitialBackoff: time.Second}, rounds: 2,
			script: func(n int, m channels.Message) (channels.Receipt, error) {
				if n == 1 {
					return channels.Receipt{}, channels.Temporary(channels.ReasonTimeout, "", 0, errScripted)
				}
				return channels.Receipt{ProviderID: "SM123", Segments: 2, Status: "queued"}, nil
			}, status: store.StatusSent, attempts: 2, detail: "queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann"))
			out := plan(t, newPlanner(clk, loadTemplates(t, nil), tt.retry), st, message("send:outcome", "everyone", "sms"))
			ch := newTestChannel("sms", channels.KindSMS, tt.script)
			d := New(st, Options{Retry: tt.retry, Now: clk.Now, Rand: fixedRand(tt.rnd), Poll: 5 * time.Millisecond})
			d.AddChannel(ch, Limits{})
			var row store.LogEntry
			for round := range max(1, tt.rounds) {
				if round > 0 {
					clk.Set(row.NextAttempt)
				}
				drain(t, d, clk, out.TriggerID)
				row = logRows(t, st, "")["ann/sms"]
			}
			if row.Status != tt.status || row.Reason != tt.reason || row.Attempts != tt.attempts {
				t.Errorf("row = %s/%q after %d attempts, want %s/%q after %d", row.Status, row.Reason, row.Attempts, tt.status, tt.reason, tt.attempts)
			}
			if want := max(tt.sends, tt.attempts); ch.sent()[row.Trigger+"/ann/sms"] != want {
				t.Errorf("the channel got %d sends, want %d", ch.sent()[row.Trigger+"/ann/sms"], want)
			}
			if tt.status == store.StatusQueued {
				if want := clk.Now().Add(tt.next); !row.NextAttempt.Equal(want) {
					t.Errorf("next attempt at %v (+%v), want +%v", row.NextAttempt, row.NextAttempt.Sub(clk.Now()), tt.next)
				}
			}
			if !strings.Contains(row.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", row.Detail, tt.detail)
			}
			if tt.status == store.StatusSent {
				if row.SentAt.IsZero() || row.ProviderID == "" {
					t.Errorf("sent row without sent_at or provider id: %+v", row)
				}
			}
			events, err := st.Events(context.Background(), row.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := max(tt.sends, tt.attempts); len(events) != want || events[len(events)-1].Status != tt.status {
				t.Errorf("events = %+v, want one per send ending in %s", events, tt.status)
			}
		})
	}
}

// TestDispatcher_Drain_MaybeSent: a send whose answer was lost after the
// request went out is held for an operator on an in_doubt: hold lane, and
// retried on an in_doubt: resend lane.
func TestDispatcher_Drain_MaybeSent(t *testing.T) {
	inDoubt := func(n int, m channels.Message) (channels.Receipt, error) {
		if n == 1 {
			return channels.Receipt{}, channels.InDoubt(channels.ReasonTimeout, "", 0, errScripted)
		}
		return channels.Receipt{ProviderID: "SM2", Status: "queued"}, nil
	}
	tests := []struct {
		name    string
		kind    channels.Kind
		inDoubt string // "" = the kind's default
		status  string // after the first drain
		sends   int    // after a second drain an hour later
	}{
		{"sms default holds", channels.KindSMS, "", store.StatusUnknown, 1},
		{"explicit hold", channels.KindEmail, InDoubtHold, store.StatusUnknown, 1},
		{"explicit resend", channels.KindSMS, InDoubtResend, store.StatusQueued, 2},
		{"email default resends", channels.KindEmail, "", store.StatusQueued, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann"))
			retry := RetryPolicy{InitialBackoff: time.Second}
			name := string(tt.kind)
			out := plan(t, newPlanner(clk, loadTemplates(t, nil), retry), st, message("send:in-doubt", "everyone", name))
			ch := newTestChannel(name, tt.kind, inDoubt)
			d := New(st, Options{Retry: retry, Now: clk.Now, Rand: fixedRand(0), Poll: 5 * time.Millisecond})
			d.AddChannel(ch, Limits{InDoubt: tt.inDoubt})
			drain(t, d, clk, out.TriggerID)
			row := logRows(t, st, "")["ann/"+name]
			if row.Status != tt.status || row.Reason != "timeout" || row.Attempts != 1 {
				t.Fatalf("row = %s/%q after %d attempts, want %s/timeout after 1", row.Status, row.Reason, row.Attempts, tt.status)
			}
			if tt.status == store.StatusUnknown {
				for _, want := range []string{"may have been sent", "check the provider", fmt.Sprintf("crier retry %d", row.ID)} {
					if !strings.Contains(row.Detail, want) {
						t.Errorf("detail %q, want it to contain %q", row.Detail, want)
					}
				}
			}
			clk.Add(time.Hour)
			drain(t, d, clk, out.TriggerID)
			if got := ch.sent()[row.Trigger+"/ann/"+name]; got != tt.sends {
				t.Errorf("the channel got %d sends, want %d", got, tt.sends)
			}
		})
	}
}

func TestDispatcher_Drain_PastDeadlineNotSent(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"))
	retry := RetryPolicy{Deadline: time.Hour}
	out := plan(t, newPlanner(clk, loadTemplates(t, nil), retry), st, message("send:late", "everyone", "sms"))
	// The dispatcher was busy (or down without a restart) past the deadline.
	clk.Add(2 * time.Hour)
	ch := newTestChannel("sms", channels.KindSMS, nil)
	drain(t, newDispatcher(st, clk, retry, ch), clk, out.TriggerID)
	row := logRows(t, st, "")["ann/sms"]
	if row.Status != store.StatusExpired || row.Reason != "deadline" {
		t.Errorf("row = %s/%s, want expired/deadline", row.Status, row.Reason)
	}
	if n := len(ch.messages()); n != 0 {
		t.Errorf("a delivery past its deadline was sent %d times", n)
	}
}

func TestDispatcher_Drain_OptedOut(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Phone = "+447400000002" }))
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	first := plan(t, p, st, message("send:first", "everyone", "sms", "email"))
	ch := newTestChannel("sms", channels.KindSMS, func(n int, m channels.Message) (channels.Receipt, error) {
		if m.Address == "+447400123456" {
			return channels.Receipt{}, channels.Permanent(channels.ReasonOptedOut, "21610", errScripted)
		}
		return channels.Receipt{ProviderID: "SM" + m.Address}, nil
	})
	email := newTestChannel("email", channels.KindEmail, nil)
	d := newDispatcher(st, clk, RetryPolicy{}, ch, email)
	drain(t, d, clk, first.TriggerID)
	rows := logRows(t, st, "send:first")
	if r := rows["ann/sms"]; r.Status != store.StatusFailed || r.Reason != "opted_out" {
		t.Errorf("ann/sms = %s/%s, want failed/opted_out", r.Status, r.Reason)
	}
	// A later plan suppresses the address and nothing else.
	second := plan(t, p, st, message("send:second", "everyone", "sms", "email"))
	rows = logRows(t, st, "send:second")
	want := map[string]string{"ann/sms": "suppressed/opted_out", "ann/email": "queued/", "bob/sms": "queued/", "bob/email": "queued/"}
	for k, w := range want {
		if got := rows[k].Status + "/" + rows[k].Reason; got != w {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	drain(t, d, clk, second.TriggerID)
	if n := ch.sent()["send:second/ann/sms"]; n != 0 {
		t.Errorf("the opted-out number was sent to %d times after opting out", n)
	}
}

func TestDispatcher_Drain_ChannelWideFailurePausesLane(t *testing.T) {
	tests := []struct {
		reason channels.Reason
		code   string
	}{{channels.ReasonAuth, "20003"}, {channels.ReasonConfig, "21606"}}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann"), person("bob"), person("cat"))
			out := plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:broken", "everyone", "sms"))
			var broken atomic.Bool
			broken.Store(true)
			ch := newTestChannel("sms", channels.KindSMS, func(n int, m channels.Message) (channels.Receipt, error) {
				if broken.Load() {
					return channels.Receipt{}, channels.Permanent(tt.reason, tt.code, errors.New("the channel cannot send"))
				}
				return channels.Receipt{ProviderID: "SM" + m.Key}, nil
			})
			retry := RetryPolicy{ChannelPause: time.Minute}
			d := New(st, Options{Retry: retry, Now: clk.Now, Poll: 5 * time.Millisecond})
			// One send at a time, so the first failure pauses the lane before
			// the next claimed delivery would go out.
			d.AddChannel(ch, Limits{Concurrency: 1})
			drain(t, d, clk, out.TriggerID)

			if n := len(ch.messages()); n != 1 {
				t.Errorf("a broken channel was tried %d times, want 1 then a pause", n)
			}
			if wait := d.lanes["sms"].br.pausedFor(clk.Now()); wait != time.Minute {
				t.Errorf("lane paused for %v, want 1m", wait)
			}
			failed := 0
			for k, r := range logRows(t, st, "") {
				if r.Status != store.StatusQueued || r.Attempts != 0 {
					t.Errorf("%s = %s after %d attempts, want queued with the attempt not counted", k, r.Status, r.Attempts)
				}
				if r.Reason == "" {
					continue // never tried: it waits for the lane
				}
				failed++
				if !r.NextAttempt.Equal(t0.Add(time.Minute)) {
					t.Errorf("%s next attempt %v, want when the pause ends (%v)", k, r.NextAttempt, t0.Add(time.Minute))
				}
				if r.Reason != string(tt.reason) {
					t.Errorf("%s reason %q, want %s", k, r.Reason, tt.reason)
				}
			}
			if failed != 1 {
				t.Errorf("%d deliveries were tried, want 1 then a pause", failed)
			}
			// Once the pause is over (and the channel fixed) everyone is sent to.
			broken.Store(false)
			clk.Add(time.Minute)
			drain(t, d, clk, out.TriggerID)
			for k, r := range logRows(t, st, "") {
				if r.Status != store.StatusSent || r.Attempts != 1 {
					t.Errorf("%s = %s after %d attempts, want sent after 1", k, r.Status, r.Attempts)
				}
			}
		})
	}
}

func TestDispatcher_Drain_SlackThreads(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Slack = "C0999ZZZZZ" }))
	inc := incident(t, st, t0)
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	alert := Request{Key: "incident:INC-1:1", Kind: "incident", Name: "open", Incident: inc,
		Targets: []Target{{Audience: "everyone", Channels: []string{"slack"}, Event: templates.EventAlert}}}
	update := alert
	update.Key, update.Name = "incident:INC-1:2", "update"
	update.Targets = []Target{{Audience: "everyone", Channels: []string{"slack"}, Event: templates.EventUpdate}}
	plan(t, p, st, alert)
	plan(t, p, st, update)

	var mu sync.Mutex
	var problems []string
	ch := newTestChannel("slack", channels.KindSlack, func(n int, m channels.Message) (channels.Receipt, error) {
		// When a reply goes out, the parent must already be recorded as sent.
		if strings.HasPrefix(m.Key, "incident:INC-1:2/") {
			status := ""
			err := st.Log(context.Background(), store.LogFilter{Trigger: "incident:INC-1:1", Channel: "slack"}, func(e *store.LogEntry) error {
				if e.Address == m.Address {
					status = e.Status
				}
				return nil
			})
			if err != nil || status != store.StatusSent {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s sent while its parent was %q (%v)", m.Key, status, err))
				mu.Unlock()
			}
		}
		thread := m.Thread
		if thread == "" {
			thread = m.Address + "/1700000000." + fmt.Sprint(m.DeliveryID)
		}
		return channels.Receipt{ProviderID: m.Address + "/" + fmt.Sprint(m.DeliveryID), Thread: thread}, nil
	})
	d := New(st, Options{Now: clk.Now, Poll: 5 * time.Millisecond})
	d.AddChannel(ch, Limits{Concurrency: 4})
	drain(t, d, clk)

	for _, p := range problems {
		t.Error(p)
	}
	msgs := ch.messages()
	if len(msgs) != 4 {
		t.Fatalf("%d Slack messages, want 4", len(msgs))
	}
	parents := map[string]channels.Message{}
	for _, m := range msgs {
		if strings.HasPrefix(m.Key, "incident:INC-1:1/") {
			parents[m.Address] = m
			if m.Thread != "" {
				t.Errorf("the first message to %s has thread %q, want none", m.Address, m.Thread)
			}
			continue
		}
		parent, ok := parents[m.Address]
		if !ok {
			t.Errorf("the reply to %s went before its parent", m.Address)
			continue
		}
		if want := m.Address + "/1700000000." + fmt.Sprint(parent.DeliveryID); m.Thread != want {
			t.Errorf("reply to %s has thread %q, want the parent's %q", m.Address, m.Thread, want)
		}
		if want := "CRITICAL INC-1: Helpline referrals down (investigating)"; m.ThreadSummary != want {
			t.Errorf("thread summary %q, want %q", m.ThreadSummary, want)
		}
	}
}

type observer struct {
	mu   sync.Mutex
	seen []string
	max  time.Duration
}

func (o *observer) Observed(channel string, kind channels.Kind, status, reason string, latency time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, channel+"/"+string(kind)+"/"+status+"/"+reason)
	o.max = max(o.max, latency)
}

func TestDispatcher_Drain_Observer(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob", func(s *subscribers.Subscriber) { s.Phone = "+447400000002" }))
	plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:obs", "everyone", "sms"))
	ch := newTestChannel("sms", channels.KindSMS, func(n int, m channels.Message) (channels.Receipt, error) {
		if m.Address == "+447400000002" {
			return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "21211", errScripted)
		}
		return channels.Receipt{ProviderID: "SM1"}, nil
	})
	obs := &observer{}
	d := New(st, Options{Now: clk.Now, Poll: 5 * time.Millisecond, Observer: obs})
	d.AddChannel(ch, Limits{})
	drain(t, d, clk)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	got := strings.Join(obs.seen, " ")
	if len(obs.seen) != 2 || !strings.Contains(got, "sms/sms/sent/") || !strings.Contains(got, "sms/sms/failed/bad_address") {
		t.Errorf("observed %q", got)
	}
	// Latency is measured on the real clock, not against the fake one
	// (which is months away from the machine's).
	if obs.max < 0 || obs.max > time.Hour {
		t.Errorf("latency %v is not a send's duration", obs.max)
	}
}

// When a channel answers a reply with a new thread (Slack: the parent was
// deleted, so the reply became the new parent), later messages about the
// incident to that place thread under the new parent, not the deleted one.
func TestDispatcher_Drain_NewThreadReplacesDeletedParent(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"))
	inc := incident(t, st, t0)
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	event := func(seq int, name, tmpl string) Request {
		return Request{Key: fmt.Sprintf("incident:INC-1:%d", seq), Kind: "incident", Name: name, Incident: inc,
			Targets: []Target{{Audience: "everyone", Channels: []string{"slack"}, Event: tmpl}}}
	}
	ch := newTestChannel("slack", channels.KindSlack, func(n int, m channels.Message) (channels.Receipt, error) {
		id := m.Address + "/1700000000." + fmt.Sprint(m.DeliveryID)
		switch {
		case m.Thread == "":
			return channels.Receipt{ProviderID: id, Thread: id}, nil
		case strings.HasPrefix(m.Key, "incident:INC-1:2/"):
			return channels.Receipt{ProviderID: id, Thread: id}, nil // the parent was gone: this reply is the new parent
		}
		return channels.Receipt{ProviderID: id, Thread: m.Thread}, nil
	})
	d := New(st, Options{Now: clk.Now, Poll: 5 * time.Millisecond})
	d.AddChannel(ch, Limits{Concurrency: 1})
	for i, e := range []Request{event(1, "open", templates.EventAlert), event(2, "update", templates.EventUpdate), event(3, "update", templates.EventUpdate)} {
		plan(t, p, st, e)
		drain(t, d, clk)
		if n := len(ch.messages()); n != i+1 {
			t.Fatalf("after event %d: %d messages", i+1, n)
		}
	}
	msgs := ch.messages()
	second := msgs[1].Address + "/1700000000." + fmt.Sprint(msgs[1].DeliveryID)
	if msgs[2].Thread != second {
		t.Errorf("the third message threads under %q, want the new parent %q", msgs[2].Thread, second)
	}
}
