package dashboard

import (
	"net/http"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/store"
)

const (
	// scheduleLookback is how far back the schedules page looks for runs.
	scheduleLookback = 72 * time.Hour
	// scheduleRuns is how many past occurrences it shows per briefing.
	scheduleRuns = 6
	// scheduleNext is how many future fire times it shows.
	scheduleNext = 5
	// dueSlack is how long after its due time an occurrence may still be
	// on its way (the scheduler ticks on the minute) before it is missed.
	dueSlack = 2 * time.Minute
)

type scheduleView struct {
	B       BriefingChoice
	Err     string
	Next    []fireTime
	Runs    []runView
	Problem bool // a late, missed or failed run is shown
}

// fireTime is a time in the schedule's own zone, flagged on a day the
// clocks change.
type fireTime struct {
	At    time.Time
	Text  string
	Clock string
}

// runView is one past occurrence and what became of it.
type runView struct {
	Due   fireTime
	State string // ok, late, missed, failed, pending
	Note  string
	O     store.RunOutcome
}

func zoned(t time.Time) fireTime {
	return fireTime{At: t, Text: t.Format("Mon 2 Jan 15:04 MST"), Clock: scheduler.ClockChange(t)}
}

func (d *Dashboard) schedules(w http.ResponseWriter, r *http.Request) {
	var scheduled, manual []scheduleView
	for _, b := range d.o.App.Choices().Briefings {
		if b.Schedule == "" {
			manual = append(manual, scheduleView{B: b})
			continue
		}
		v, err := d.schedule(r, b)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		scheduled = append(scheduled, v)
	}
	d.render(w, r, http.StatusOK, "schedules", "Schedules", struct {
		Scheduled, Manual []scheduleView
	}{scheduled, manual})
}

// schedule reads one briefing's next fire times and its recent
// occurrences: fired on time, late (after a restart), failed (an error,
// or deliveries that failed), missed (crier was down, or the scheduler did
// not fire it), or pending (due a moment ago, not fired yet). Occurrences
// before the schedule's first recorded run are not its misses (a new
// install does not owe briefings for the past), so the page starts there.
func (d *Dashboard) schedule(r *http.Request, b BriefingChoice) (scheduleView, error) {
	v := scheduleView{B: b}
	sched, err := scheduler.Parse(b.Schedule)
	if err != nil {
		v.Err, v.Problem = err.Error(), true
		return v, nil
	}
	// cron answers in the zone it is asked in; people read a schedule in
	// its own (CRON_TZ), where 08:00 stays 08:00 across clock changes.
	now := d.o.Now().In(zoneOf(sched, d.o.Location))
	for _, t := range scheduler.Next(sched, now, scheduleNext) {
		v.Next = append(v.Next, zoned(t))
	}
	last, ok, err := d.o.Read.LastRun(r.Context(), b.Name)
	if err != nil || !ok {
		return v, err
	}
	var runs []runView
	for t := sched.Next(now.Add(-scheduleLookback)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		o, err := d.o.Read.RunOutcome(r.Context(), b.Name, t)
		if err != nil {
			return v, err
		}
		if !o.Fired && t.Before(last.DueAt) {
			continue
		}
		runs = append(runs, judge(t, o, now))
	}
	if len(runs) > scheduleRuns {
		runs = runs[len(runs)-scheduleRuns:]
	}
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].State != "ok" && runs[i].State != "pending" {
			v.Problem = true
		}
		v.Runs = append(v.Runs, runs[i])
	}
	return v, nil
}

// zoneOf is the zone a cron schedule runs in (its CRON_TZ), or fallback.
func zoneOf(s cron.Schedule, fallback *time.Location) *time.Location {
	if ss, ok := s.(*cron.SpecSchedule); ok && ss.Location != nil && ss.Location != time.Local {
		return ss.Location
	}
	return fallback
}

// judge says what became of the occurrence due at due.
func judge(due time.Time, o store.RunOutcome, now time.Time) runView {
	rv := runView{Due: zoned(due), O: o, State: "ok"}
	switch {
	case !o.Fired && now.Sub(due) > dueSlack:
		rv.State, rv.Note = "missed", "never sent: the scheduler did not fire it"
	case !o.Fired:
		rv.State, rv.Note = "pending", "due; not sent yet"
	case o.Run.TriggerID == 0 && o.Run.Late && o.Run.Error != "":
		// recorded at start-up for an occurrence crier was down for
		rv.State, rv.Note = "missed", o.Run.Error
	case o.Run.Error != "":
		rv.State, rv.Note = "failed", o.Run.Error
	case o.Failed > 0:
		rv.State, rv.Note = "failed", "some deliveries failed"
	case o.Run.Late:
		rv.State, rv.Note = "late", "sent late, after a restart"
	}
	return rv
}
