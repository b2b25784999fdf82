package scheduler

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/crier-dev/crier/store"
)

func TestParse_Specs(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
	}{
		{"CRON_TZ=Europe/London 0 8,17 * * *", ""},
		{"0 9 * * MON-FRI", ""},
		{"@hourly", ""},
		{"", "empty"},
		{"CRON_TZ=Europe/London", "malformed"},
		{"CRON_TZ=Mars/Olympus 0 8 * * *", "Mars/Olympus"},
		{"0 8 * *", "five fields"},
		{"0 0 8 * * *", "five fields"},
		{"61 8 * * *", "61"},
		{"0 0 30 2 *", "never fires"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := Parse(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want no error", tt.spec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tt.spec, err, tt.wantErr)
			}
		})
	}
}

func TestNext_EuropeLondonAcrossClockChanges(t *testing.T) {
	s, err := Parse("CRON_TZ=Europe/London 0 8,17 * * *")
	if err != nil {
		t.Fatal(err)
	}
	// Saturday 28 March 2026 12:00 UTC; clocks go forward on Sunday 29 March.
	got := Next(s, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), 4)
	want := []string{"2026-03-28T17:00:00Z", "2026-03-29T07:00:00Z", "2026-03-29T16:00:00Z", "2026-03-30T07:00:00Z"}
	for i, w := range want {
		if g := got[i].UTC().Format(time.RFC3339); g != w {
			t.Errorf("fire %d = %s, want %s (08:00/17:00 local)", i, g, w)
		}
	}
}

// briefings records what the scheduler asked for.
type briefings struct {
	mu    sync.Mutex
	calls []string
}

func (b *briefings) Brief(_ context.Context, name string, due time.Time, late bool) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tag := ""
	if late {
		tag = " late"
	}
	b.calls = append(b.calls, name+"@"+due.UTC().Format(time.RFC3339)+tag)
	return int64(len(b.calls)), nil
}

func openStore(t *testing.T, now func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"), store.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestScheduler_Fire_OncePerOccurrence(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	st := openStore(t, func() time.Time { return now })
	b := &briefings{}
	s := New(st, b, Options{Now: func() time.Time { return now }})
	if err := s.Add("ministers-daily", "CRON_TZ=Europe/London 0 8,17 * * *"); err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for range 2 { // the timer ticking twice, or a restart in the same minute
		if err := s.Fire(context.Background(), "ministers-daily", due); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.calls) != 1 {
		t.Fatalf("briefer called %d times (%v), want once", len(b.calls), b.calls)
	}
	run, ok, err := st.LastRun(context.Background(), "ministers-daily")
	if err != nil || !ok || !run.DueAt.Equal(due) || run.TriggerID != 1 {
		t.Fatalf("LastRun = %+v, %v, %v; want the 08:00 run with trigger 1", run, ok, err)
	}
}

func TestScheduler_CatchUp_FiresLatestMissedOnceMarkedLate(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := openStore(t, clock)
	b := &briefings{}
	s := New(st, b, Options{Now: clock, Grace: 2 * time.Hour})
	if err := s.Add("ministers-daily", "CRON_TZ=Europe/London 0 8,17 * * *"); err != nil {
		t.Fatal(err)
	}
	// A new install catches up nothing.
	if err := s.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(b.calls) != 0 {
		t.Fatalf("fresh install fired %v, want nothing", b.calls)
	}
	if err := s.Fire(context.Background(), "ministers-daily", now); err != nil {
		t.Fatal(err)
	}
	// crier is down from 08:00 on the 25th until 17:30 on the 26th: 17:00 on
	// the 25th and 08:00 on the 26th are older than the grace window or
	// superseded; 17:00 on the 26th is fired once, late.
	now = time.Date(2026, 11, 26, 17, 30, 0, 0, time.UTC)
	for range 2 {
		if err := s.CatchUp(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"ministers-daily@2026-11-25T08:00:00Z", "ministers-daily@2026-11-26T17:00:00Z late"}
	if strings.Join(b.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls = %v, want %v", b.calls, want)
	}
	// Beyond the grace window nothing is sent, but the miss is recorded.
	now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	if err := s.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(b.calls) != 2 {
		t.Fatalf("calls after a long outage = %v, want no new call", b.calls)
	}
	run, _, _ := st.LastRun(context.Background(), "ministers-daily")
	if !run.DueAt.Equal(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)) || !strings.Contains(run.Error, "missed") {
		t.Fatalf("last run = %+v, want the 27th 08:00 recorded as missed", run)
	}
}

func TestClockChange_EuropeLondon(t *testing.T) {
	lon, _ := time.LoadLocation("Europe/London")
	tests := []struct {
		at   time.Time
		want string // substring; "" = ordinary day
	}{
		{time.Date(2026, 3, 28, 8, 0, 0, 0, lon), ""},
		{time.Date(2026, 3, 29, 8, 0, 0, 0, lon), "clocks go forward today (GMT to BST)"},
		{time.Date(2026, 3, 29, 0, 30, 0, 0, lon), "within two hours"},
		{time.Date(2026, 10, 25, 17, 0, 0, 0, lon), "clocks go back today (BST to GMT)"},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, lon), "within two hours"},
		{time.Date(2026, 10, 26, 8, 0, 0, 0, lon), ""},
	}
	for _, tt := range tests {
		got := ClockChange(tt.at)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("ClockChange(%s) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

func TestNext_InTheSchedulesZone(t *testing.T) {
	s, err := Parse("CRON_TZ=Europe/London 0 17 * * *")
	if err != nil {
		t.Fatal(err)
	}
	got := Next(s, time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), 1)[0]
	if got.Location().String() != "Europe/London" || got.Hour() != 17 || got.UTC().Hour() != 16 {
		t.Fatalf("next = %s, want 17:00 Europe/London (16:00 UTC in summer)", got)
	}
}

// TestScheduler_CatchUp_PlansRecordedButUnplanned: an occurrence recorded
// as fired whose planning never finished (crier stopped between the two,
// or planning failed) is planned at the next start, once.
func TestScheduler_CatchUp_PlansRecordedButUnplanned(t *testing.T) {
	due := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	now := due.Add(3 * time.Minute)
	clock := func() time.Time { return now }
	st := openStore(t, clock)
	if _, err := st.RecordRun(context.Background(), store.ScheduleRun{Schedule: "ministers-daily", DueAt: due, FiredAt: due}); err != nil {
		t.Fatal(err)
	}
	b := &briefings{}
	s := New(st, b, Options{Now: clock})
	if err := s.Add("ministers-daily", "CRON_TZ=Europe/London 0 8,17 * * *"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.CatchUp(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.calls) != 1 || !strings.HasPrefix(b.calls[0], "ministers-daily@2026-11-25T17:00:00Z") {
		t.Fatalf("calls %v, want the 17:00 occurrence planned once", b.calls)
	}
	run, _, _ := st.LastRun(context.Background(), "ministers-daily")
	if run.TriggerID == 0 {
		t.Fatalf("run %+v still has no trigger", run)
	}
}

// TestScheduler_Fire_SurvivesStop: a stop arriving while a briefing fires
// does not leave it recorded but unplanned.
func TestScheduler_Fire_SurvivesStop(t *testing.T) {
	due := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	st := openStore(t, func() time.Time { return due })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop came first
	b := &briefings{}
	s := New(st, b, Options{Now: func() time.Time { return due }})
	if err := s.Fire(ctx, "ministers-daily", due); err != nil {
		t.Fatal(err)
	}
	run, ok, _ := st.LastRun(context.Background(), "ministers-daily")
	if !ok || run.TriggerID == 0 || len(b.calls) != 1 {
		t.Fatalf("run %+v (recorded %v), calls %v: want recorded and planned", run, ok, b.calls)
	}
}
