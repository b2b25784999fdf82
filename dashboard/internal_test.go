package dashboard

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestDashboard_Layout_StacksScaledToBusiestHour(t *testing.T) {
	d := &Dashboard{o: Options{Location: time.UTC}}
	since := time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC)
	var g [chartHours][5]int
	g[0] = [5]int{0, 10, 0, 0, 0}  // 10 sent
	g[23] = [5]int{5, 10, 1, 2, 2} // the busiest hour: 20
	cc := d.layout("c", "sms", since, &g)
	if cc.Max != 20 || len(cc.Bars) != 2 || len(cc.Rows) != 2 {
		t.Fatalf("layout = max %d, %d bars, %d rows", cc.Max, len(cc.Bars), len(cc.Rows))
	}
	plot := cc.Base - cc.Top
	height := func(b bar) (h int) {
		for _, r := range b.Rects {
			h += r.H
		}
		return h
	}
	if got := height(cc.Bars[1]); got < plot-5 || got > plot {
		t.Errorf("the busiest hour's bar is %d high, want the plot's height %d (give or take rounding)", got, plot)
	}
	if got := height(cc.Bars[0]); got != 10*plot/20 {
		t.Errorf("a half-busy hour's bar is %d high, want %d", got, 10*plot/20)
	}
	var classes []string
	for _, r := range cc.Bars[1].Rects {
		classes = append(classes, r.Class)
	}
	if want := []string{"c-delivered", "c-sent", "c-queued", "c-suppressed", "c-failed"}; !reflect.DeepEqual(classes, want) {
		t.Errorf("stack order bottom up = %v, want %v", classes, want)
	}
	if cc.Bars[1].Title != "10:00–11:00 UTC: 5 delivered, 10 sent, 1 queued, 2 suppressed, 2 failed" {
		t.Errorf("bar title = %q", cc.Bars[1].Title)
	}
	if cc.Summary != "sms, last 24 hours: 5 delivered, 20 sent, 1 queued, 2 suppressed, 2 failed; busiest hour 20 messages." {
		t.Errorf("summary = %q", cc.Summary)
	}
	if len(cc.Ticks) != 8 || cc.Ticks[0].Label != "11:00" {
		t.Errorf("ticks = %+v", cc.Ticks)
	}
}

func TestDashboard_Judge_RunStates(t *testing.T) {
	due := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	fired := func(mods ...func(*store.RunOutcome)) store.RunOutcome {
		o := store.RunOutcome{Fired: true, Run: store.ScheduleRun{DueAt: due, FiredAt: due, TriggerID: 7}, Sent: 4}
		for _, m := range mods {
			m(&o)
		}
		return o
	}
	tests := []struct {
		name string
		o    store.RunOutcome
		now  time.Time
		want string
	}{
		{"on time", fired(), due.Add(time.Hour), "ok"},
		{"due a moment ago", store.RunOutcome{}, due.Add(time.Minute), "pending"},
		{"never fired", store.RunOutcome{}, due.Add(time.Hour), "missed"},
		{"recorded as missed at start-up", fired(func(o *store.RunOutcome) {
			o.Run.TriggerID, o.Run.Late, o.Run.Error = 0, true, "missed while crier was not running"
		}), due.Add(3 * time.Hour), "missed"},
		{"failed to plan", fired(func(o *store.RunOutcome) { o.Run.Error = "template failed" }), due.Add(time.Hour), "failed"},
		{"deliveries failed", fired(func(o *store.RunOutcome) { o.Failed = 1 }), due.Add(time.Hour), "failed"},
		{"late after a restart", fired(func(o *store.RunOutcome) { o.Run.Late = true }), due.Add(time.Hour), "late"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(due, tt.o, tt.now); got.State != tt.want {
				t.Errorf("judge = %q (%s), want %q", got.State, got.Note, tt.want)
			}
		})
	}
}

func TestDashboard_SafeNext_StaysOnSite(t *testing.T) {
	for in, want := range map[string]string{"/incidents/INC-1?x=1": "/incidents/INC-1?x=1", "": "/", "//evil.example/": "/",
		"https://evil.example/": "/", `/\evil.example`: "/", "/a\r\nSet-Cookie: x": "/"} {
		if got := SafeNext(in); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDashboard_New_NeedsReaderAndApp(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Options.Read and Options.App") {
		t.Errorf("New without a reader and an app: %v", err)
	}
}
