package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
)

// TestAPI_Schedules_LateAfterRestart records yesterday's 17:00 briefing in
// the database, starts crier serve at 10:00 (the 08:00 run was missed
// while it was down, within schedule.grace), and reads the catch-up back
// through GET /api/v1/schedules: the latest run is 08:00 London, fired
// late at 10:00, and the schedule's state says so.
func TestAPI_Schedules_LateAfterRestart(t *testing.T) {
	h := apiHarness(t)
	st, err := store.Open(context.Background(), filepath.Join(h.dir, "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	if _, err := st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "ministers-daily", DueAt: yesterday, FiredAt: yesterday}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c := &apiClient{t: t, s: startServe(t, h), spec: loadSpec(t)}

	var sc struct {
		Schedules []struct {
			State   string `json:"state"`
			Why     string `json:"why"`
			LastRun struct {
				DueAt   string `json:"due_at"`
				FiredAt string `json:"fired_at"`
				Late    bool   `json:"late"`
			} `json:"last_run"`
		} `json:"schedules"`
	}
	c.want(t, 200, req{method: "GET", path: "/api/v1/schedules", token: apiViewer}).json(t, &sc)
	if len(sc.Schedules) != 1 {
		t.Fatalf("schedules: %+v", sc.Schedules)
	}
	s := sc.Schedules[0]
	if s.State != "late" || !s.LastRun.Late || s.LastRun.DueAt != "2026-11-25T08:00:00Z" || s.LastRun.FiredAt != "2026-11-25T10:00:00Z" || !strings.Contains(s.Why, "2h0m0s") {
		t.Errorf("ministers-daily after a restart: %+v", s)
	}
}

// TestRunState_Cases judges a schedule's latest run: an overdue
// occurrence after it is missed; otherwise the run's own outcome decides.
func TestRunState_Cases(t *testing.T) {
	sched, err := scheduler.Parse("CRON_TZ=Europe/London 0 8,17 * * *")
	if err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return time.Date(2026, 11, 25, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name string
		now  time.Time
		run  server.ScheduleRun
		want string
	}{
		{"sent", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: due, Sent: 3}, "ok"},
		{"next not due yet", at(17, 1), server.ScheduleRun{DueAt: due, FiredAt: due, Sent: 3}, "ok"},
		{"next overdue", at(17, 3), server.ScheduleRun{DueAt: due, FiredAt: due, Sent: 3}, "missed"},
		{"recorded as missed", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: at(10, 0), Late: true, Error: "missed while crier was not running; not sent"}, "missed"},
		{"failed to plan", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: due, Error: "no template"}, "failed"},
		{"every message failed", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: due, Failed: 4}, "failed"},
		{"late", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: at(9, 30), Late: true, Pending: 2}, "late"},
		{"nothing sent yet", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: due, Pending: 2, Failed: 1}, "pending"},
		{"some sent, some failed", at(10, 0), server.ScheduleRun{DueAt: due, FiredAt: due, Sent: 1, Failed: 1}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := runState(sched, tt.now, &tt.run)
			if got != tt.want {
				t.Errorf("state %q (%s), want %q", got, why, tt.want)
			}
			if (got == "ok") != (why == "") {
				t.Errorf("state %q with why %q: only ok has no explanation", got, why)
			}
		})
	}
}
