package dashboard_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestDashboard_Schedules_NextInItsZoneAndProblemsStandOut(t *testing.T) {
	e := newEnv(t)
	code, _, body := e.get("/schedules")
	if code != http.StatusOK {
		t.Fatalf("GET /schedules = %d", code)
	}
	// cron answers in the zone it is asked in: the page asks in London's
	mustContain(t, "a schedule never run", body, "Daily report", "Thu 26 Nov 08:00 GMT", "No run recorded yet.", `href="/compose?briefing=daily"`)

	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 8, 0, 0, 0, time.UTC) }
	record := func(rs ...store.ScheduleRun) {
		t.Helper()
		for _, r := range rs {
			if _, err := e.st.RecordRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The 23rd went out; the scheduler has not fired the 25th (due two
	// hours ago) although crier is running.
	record(store.ScheduleRun{Schedule: "daily", DueAt: day(23), FiredAt: day(23)}, store.ScheduleRun{Schedule: "daily", DueAt: day(24), FiredAt: day(24)})
	_, _, body = e.get("/schedules")
	mustContain(t, "a schedule whose latest occurrence did not fire", body, "needs attention", `class="run-missed"`, "Wed 25 Nov 08:00 GMT",
		"the scheduler did not fire it", "Mon 23 Nov 08:00 GMT", `<span class="tag tag-ok">Ok</span>`)

	// Start-up records an occurrence crier was down for as missed, and
	// sends the latest within grace late.
	record(store.ScheduleRun{Schedule: "daily", DueAt: day(25), FiredAt: day(25).Add(90 * time.Minute), Late: true})
	_, _, body = e.get("/schedules")
	mustContain(t, "a schedule with a late run", body, "needs attention", `<span class="tag tag-late">Late</span>`, "sent late, after a restart")
}
