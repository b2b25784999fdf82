package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// TestApp_MissedBriefingAlarm: on the example config, the 08:00 ministers'
// briefing has not gone out by 08:15 (the scheduler stalled): the duty
// officer is told by SMS over ops-sms — not over the briefing's own email
// channel — once, however often the check runs.
func TestApp_MissedBriefingAlarm(t *testing.T) {
	h := exampleHarness(t)
	london, _ := time.LoadLocation("Europe/London")
	h.setNow(time.Date(2026, 11, 25, 7, 55, 0, 0, london)) // crier is running before the briefing is due
	var out, errb syncBuffer
	a, err := openApp(context.Background(), h.config, h.env(&out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()

	h.setNow(time.Date(2026, 11, 25, 8, 10, 0, 0, london))
	if err := a.sched.CheckAlarms(ctx, a.st, a, a.watches()); err != nil {
		t.Fatal(err)
	}
	if rows := alarmRows(t, a); len(rows) != 0 {
		t.Fatalf("alarm raised at 08:10, before its 15 minutes: %+v", rows)
	}
	h.setNow(time.Date(2026, 11, 25, 8, 16, 0, 0, london))
	for range 2 {
		if err := a.sched.CheckAlarms(ctx, a.st, a, a.watches()); err != nil {
			t.Fatal(err)
		}
	}
	rows := alarmRows(t, a)
	if len(rows) != 1 {
		t.Fatalf("alarm deliveries %+v, want exactly one", rows)
	}
	r := rows[0]
	if r.Subscriber != "duty-officer" || r.Channel != "ops-sms" || r.Kind != "sms" || r.Status != store.StatusQueued {
		t.Fatalf("alarm %+v, want one queued SMS to duty-officer over ops-sms", r)
	}
	if !strings.Contains(r.Text, "08:00") || !strings.Contains(r.Text, "did not fire") {
		t.Fatalf("alarm text %q should name the 08:00 briefing and why", r.Text)
	}
}

func alarmRows(t *testing.T, a *app) []store.LogEntry {
	t.Helper()
	var out []store.LogEntry
	err := a.st.Log(context.Background(), store.LogFilter{WithBody: true}, func(e *store.LogEntry) error {
		if strings.HasPrefix(e.Trigger, "alarm:ministers-daily:") {
			out = append(out, *e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
