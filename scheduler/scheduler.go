// Package scheduler fires briefings on cron schedules. Parsing and the
// in-process timer come from robfig/cron/v3 (with panics recovered); what
// cron does not do, it adds: every occurrence is recorded in the store
// before it fires, so one occurrence fires once even if the timer ticks
// twice or crier restarts inside the same minute, and occurrences missed
// while crier was down are fired once, marked late, within a grace window.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/crier-dev/crier/store"
)

// Parse reads a standard five-field cron spec, optionally prefixed with
// CRON_TZ=<zone>. It never panics (the library's parser can, on a
// malformed CRON_TZ prefix) and rejects specs that never fire.
func Parse(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cron spec %q is malformed: write five fields after the zone, as in \"CRON_TZ=Europe/London 0 8 * * *\"", spec)
		}
	}()
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, errors.New(`cron spec is empty: write five fields, for example "CRON_TZ=Europe/London 0 8,17 * * *"`)
	}
	sched, err = cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %v: write five fields (minute hour day-of-month month day-of-week), optionally prefixed with CRON_TZ=<IANA zone>", spec, err)
	}
	probe := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if sched.Next(probe).IsZero() {
		return nil, fmt.Errorf("cron spec %q never fires (no such date): check the day and month fields", spec)
	}
	return sched, nil
}

// Next lists the next n fire times of sched after from, in the schedule's
// own zone (its CRON_TZ) so that they read as the schedule was written.
func Next(sched cron.Schedule, from time.Time, n int) []time.Time {
	if ss, ok := sched.(*cron.SpecSchedule); ok && ss.Location != nil {
		from = from.In(ss.Location)
	}
	out := make([]time.Time, 0, n)
	for t := from; len(out) < n; {
		t = sched.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// previous returns the latest occurrence of sched at or before now, if
// there is one within the last lookback.
func previous(sched cron.Schedule, now time.Time, lookback time.Duration) (time.Time, bool) {
	var last time.Time
	for t := sched.Next(now.Add(-lookback)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		last = t
	}
	return last, !last.IsZero()
}

// missedNote starts the error of an occurrence recorded as missed (not
// sent on purpose): it is not planned later.
const missedNote = "missed"

// Briefer plans a briefing for one occurrence. due is the occurrence's
// scheduled time; late says it fires after a restart, not on time.
type Briefer interface {
	Brief(ctx context.Context, name string, due time.Time, late bool) (triggerID int64, err error)
}

// Runs is what the scheduler needs of the store.
type Runs interface {
	RecordRun(ctx context.Context, r store.ScheduleRun) (bool, error)
	RunOutcome(ctx context.Context, schedule string, due time.Time) (store.RunOutcome, error)
	FinishRun(ctx context.Context, schedule string, due time.Time, triggerID int64, errText string) error
	LastRun(ctx context.Context, schedule string) (store.ScheduleRun, bool, error)
}

// Options configure a Scheduler.
type Options struct {
	// Grace is how late a missed occurrence may still be fired after a
	// restart (default 2h). Older ones are recorded as missed, not sent.
	Grace time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

// Scheduler fires named briefings on their schedules.
type Scheduler struct {
	runs    Runs
	briefer Briefer
	opts    Options
	mu      sync.Mutex
	entries []entry
	cron    *cron.Cron
	started time.Time // when this scheduler was made: nothing before it was its job
}

type entry struct {
	name  string
	spec  string
	sched cron.Schedule
}

// New builds a scheduler; add schedules with Add, then Start.
func New(runs Runs, b Briefer, o Options) *Scheduler {
	if o.Grace == 0 {
		o.Grace = 2 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{runs: runs, briefer: b, opts: o, started: o.Now()}
}

// Add registers the briefing name on spec.
func (s *Scheduler) Add(name, spec string) error {
	sched, err := Parse(spec)
	if err != nil {
		return fmt.Errorf("briefing %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, entry{name: name, spec: spec, sched: sched})
	return nil
}

// CatchUp fires, once and marked late, the latest occurrence of each
// schedule that was due while crier was not running, if it is within
// the grace window; older missed occurrences are recorded as missed. A
// schedule that has never run is not caught up (a new install does not
// send a briefing for the past).
func (s *Scheduler) CatchUp(ctx context.Context) error {
	now := s.opts.Now()
	var errs []error
	for _, e := range s.list() {
		last, ok, err := s.runs.LastRun(ctx, e.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if last.TriggerID == 0 && !strings.HasPrefix(last.Error, missedNote) && now.Sub(last.DueAt) <= s.opts.Grace {
			// The latest occurrence was recorded but never planned.
			if err := s.fire(ctx, e.name, last.DueAt, true); err != nil {
				errs = append(errs, err)
			}
		}
		var missed []time.Time
		for t := e.sched.Next(last.DueAt); !t.IsZero() && !t.After(now); t = e.sched.Next(t) {
			missed = append(missed, t)
			if len(missed) > 10000 {
				break
			}
		}
		for i, due := range missed {
			if i < len(missed)-1 || now.Sub(due) > s.opts.Grace {
				if _, err := s.runs.RecordRun(ctx, store.ScheduleRun{Schedule: e.name, DueAt: due, FiredAt: now, Late: true,
					Error: missedNote + " while crier was not running; not sent (superseded or older than the grace window)"}); err != nil {
					errs = append(errs, err)
				}
				s.opts.Log.Warn("briefing occurrence missed while crier was down", "briefing", e.name, "due", due.UTC().Format(time.RFC3339))
				continue
			}
			if err := s.fire(ctx, e.name, due, true); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Fire records and fires one occurrence of the named briefing; an
// occurrence already recorded is not fired again.
func (s *Scheduler) Fire(ctx context.Context, name string, due time.Time) error {
	return s.fire(ctx, name, due, false)
}

func (s *Scheduler) fire(ctx context.Context, name string, due time.Time, late bool) error {
	// A stop must not cut an occurrence in half (recorded as fired, never
	// planned): record, plan and finish run to the end.
	ctx = context.WithoutCancel(ctx)
	now := s.opts.Now()
	fresh, err := s.runs.RecordRun(ctx, store.ScheduleRun{Schedule: name, DueAt: due, FiredAt: now, Late: late})
	if err != nil {
		return fmt.Errorf("briefing %s at %s: record: %w", name, due.UTC().Format(time.RFC3339), err)
	}
	if !fresh {
		o, err := s.runs.RunOutcome(ctx, name, due)
		if err != nil {
			return err
		}
		if o.Run.TriggerID != 0 || strings.HasPrefix(o.Run.Error, missedNote) {
			s.opts.Log.Info("briefing occurrence already fired; not firing again", "briefing", name, "due", due.UTC().Format(time.RFC3339))
			return nil
		}
		// Recorded but never planned (a crash, or a failure, between the
		// two): plan it now. Planning is idempotent by its trigger key.
		s.opts.Log.Warn("briefing occurrence was recorded but not planned; planning it now", "briefing", name, "due", due.UTC().Format(time.RFC3339))
	}
	id, err := s.briefer.Brief(ctx, name, due, late)
	errText := ""
	if err != nil {
		errText = err.Error()
		s.opts.Log.Error("briefing failed to plan", "briefing", name, "due", due.UTC().Format(time.RFC3339), "err", err)
	} else {
		s.opts.Log.Info("briefing fired", "briefing", name, "due", due.UTC().Format(time.RFC3339), "late", late, "trigger", id)
	}
	if ferr := s.runs.FinishRun(ctx, name, due, id, errText); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

func (s *Scheduler) list() []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]entry(nil), s.entries...)
}

// Start runs the schedules on robfig/cron until Stop. Panics in a
// briefing are recovered and logged; a briefing still running when its
// next occurrence comes is not started twice.
func (s *Scheduler) Start(ctx context.Context) {
	logger := cron.PrintfLogger(slogPrintf{s.opts.Log})
	c := cron.New(cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)), cron.WithLogger(logger))
	for _, e := range s.list() {
		e := e
		c.Schedule(e.sched, cron.FuncJob(func() {
			due, ok := previous(e.sched, s.opts.Now(), 2*time.Minute)
			if !ok {
				due = s.opts.Now().Truncate(time.Minute)
			}
			if err := s.fire(ctx, e.name, due, false); err != nil {
				s.opts.Log.Error("scheduled briefing", "briefing", e.name, "err", err)
			}
		}))
	}
	s.mu.Lock()
	s.cron = c
	s.mu.Unlock()
	c.Start()
}

// Stop stops the timer and waits for running briefings to finish.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	c := s.cron
	s.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	s.mu.Lock()
	if s.cron == c {
		s.cron = nil
	}
	s.mu.Unlock()
}

// Running reports whether the timer is running (for /readyz).
func (s *Scheduler) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cron != nil
}

// Upcoming lists each schedule's next n fire times after now.
func (s *Scheduler) Upcoming(n int) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, e := range s.list() {
		out[e.name] = Next(e.sched, s.opts.Now(), n)
	}
	return out
}

type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Warn("cron: " + fmt.Sprintf(format, args...))
}

// ClockChange describes the clock change on t's local day, if there is
// one: "" on an ordinary day. A fire time on such a day is worth a look:
// in Europe/London a job between 01:00 and 02:00 runs twice in October and
// not at all in March.
func ClockChange(t time.Time) string {
	loc := t.Location()
	y, m, d := t.Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, loc)
	end := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	name0, off0 := start.Zone()
	name1, off1 := end.Add(-time.Nanosecond).Zone()
	if off0 == off1 {
		return ""
	}
	dir := "forward"
	if off1 < off0 {
		dir = "back"
	}
	msg := fmt.Sprintf("clocks go %s today (%s to %s)", dir, name0, name1)
	// Find the transition and say whether this fire time is near it.
	lo, hi := start, end
	for hi.Sub(lo) > time.Minute {
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, off := mid.Zone(); off == off0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	if d := t.Sub(hi); d > -2*time.Hour && d < 2*time.Hour {
		msg += "; this run is within two hours of the change: check it is not skipped or doubled"
	}
	return msg
}
