package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

type alarms struct{ raised []string }

func (a *alarms) RaiseAlarm(_ context.Context, briefing string, due time.Time, why string) error {
	a.raised = append(a.raised, briefing+"@"+due.UTC().Format("15:04")+": "+why)
	return nil
}

// plan writes a trigger with deliveries in the given statuses, as the
// planner and dispatcher would have.
func plan(t *testing.T, st *store.Store, key string, statuses ...string) int64 {
	t.Helper()
	var id int64
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: key, Kind: "briefing", Name: "ministers-daily"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		id = tr.ID
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for i, s := range statuses {
			if err := enq.Add(&store.NewDelivery{SubscriberID: string(rune('a' + i)), Channel: "email", Kind: "email", Address: "x@example.org",
				Status: s, Text: "briefing"}); err != nil {
				return err
			}
		}
		return enq.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestScheduler_CheckAlarms(t *testing.T) {
	due := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(t *testing.T, st *store.Store)
		want  string // "" = no alarm
	}{
		{"never fired (scheduler stalled)", func(*testing.T, *store.Store) {}, "did not fire"},
		{"template failed", func(t *testing.T, st *store.Store) {
			st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "ministers-daily", DueAt: due, FiredAt: due})
			st.FinishRun(context.Background(), "ministers-daily", due, 0, "render briefing email for minister-health: template: boom")
		}, "template: boom"},
		{"every delivery failing", func(t *testing.T, st *store.Store) {
			st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "ministers-daily", DueAt: due, FiredAt: due})
			id := plan(t, st, "briefing:ministers-daily:08:00", store.StatusQueued, store.StatusQueued, store.StatusFailed)
			st.FinishRun(context.Background(), "ministers-daily", due, id, "")
		}, "none of its 3 messages has been sent"},
		{"went out", func(t *testing.T, st *store.Store) {
			st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "ministers-daily", DueAt: due, FiredAt: due})
			id := plan(t, st, "briefing:ministers-daily:08:00", store.StatusQueued, store.StatusQueued)
			st.FinishRun(context.Background(), "ministers-daily", due, id, "")
			// the dispatcher sends one of them
			c, err := st.Claim(context.Background(), store.ClaimOptions{Channel: "email", Limit: 1, Lease: time.Minute})
			if err != nil || len(c) != 1 {
				t.Fatal(err)
			}
			if err := st.Record(context.Background(), []store.Result{{ID: c[0].ID, Status: store.StatusSent}}); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := due.Add(-time.Hour) // crier was running before 08:00
			clock := func() time.Time { return now }
			st := openStore(t, clock)
			tt.setup(t, st)
			s := New(st, &briefings{}, Options{Now: clock})
			if err := s.Add("ministers-daily", "CRON_TZ=Europe/London 0 8,17 * * *"); err != nil {
				t.Fatal(err)
			}
			a := &alarms{}
			watch := []Watch{{Briefing: "ministers-daily", After: 15 * time.Minute}}
			// Before the alarm time, nothing is checked for this occurrence.
			now = due.Add(10 * time.Minute)
			if err := s.CheckAlarms(context.Background(), st, a, watch); err != nil {
				t.Fatal(err)
			}
			if len(a.raised) != 0 {
				t.Fatalf("alarm raised before 15 minutes had passed (or for an occurrence before crier started): %v", a.raised)
			}
			now = due.Add(20 * time.Minute)
			if err := s.CheckAlarms(context.Background(), st, a, watch); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(a.raised) != 0 {
					t.Fatalf("alarm raised for a briefing that went out: %v", a.raised)
				}
				return
			}
			if len(a.raised) != 1 || !strings.Contains(a.raised[0], "ministers-daily@08:00") || !strings.Contains(a.raised[0], tt.want) {
				t.Fatalf("raised %v, want one alarm for 08:00 containing %q", a.raised, tt.want)
			}
		})
	}
}
