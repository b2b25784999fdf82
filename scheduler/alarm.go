package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crier-dev/crier/store"
)

// Alarmer raises the missed-briefing alarm for one occurrence. It must be
// idempotent per (briefing, due): the check runs again and again.
type Alarmer interface {
	RaiseAlarm(ctx context.Context, briefing string, due time.Time, why string) error
}

// Outcomes is what the alarm check reads of the store.
type Outcomes interface {
	RunOutcome(ctx context.Context, schedule string, due time.Time) (store.RunOutcome, error)
}

// Watch is one briefing's dead man's switch: raise the alarm when its
// occurrence has not gone out After its due time.
type Watch struct {
	Briefing string
	After    time.Duration
}

// CheckAlarms looks at the latest occurrence of each watched briefing that
// is at least its After old (and at most a day): if it did not fire, failed
// to plan, or has no delivery sent yet, it raises the alarm with the
// reason. A briefing whose deliveries went out raises nothing.
func (s *Scheduler) CheckAlarms(ctx context.Context, out Outcomes, a Alarmer, watches []Watch) error {
	now := s.opts.Now()
	var errs []error
	for _, w := range watches {
		e, ok := s.entry(w.Briefing)
		if !ok {
			continue
		}
		due, ok := previous(e.sched, now.Add(-w.After), 24*time.Hour)
		if !ok {
			continue
		}
		o, err := out.RunOutcome(ctx, w.Briefing, due)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !o.Fired && due.Before(s.started) {
			// Due before this crier started and never recorded: a new
			// install. (Occurrences missed during an outage are recorded
			// by CatchUp, with why, and so do raise the alarm.)
			continue
		}
		why := missedReason(o, w.After)
		if why == "" {
			continue
		}
		if err := a.RaiseAlarm(ctx, w.Briefing, due, why); err != nil {
			errs = append(errs, fmt.Errorf("alarm for %s at %s: %w", w.Briefing, due.UTC().Format(time.RFC3339), err))
		}
	}
	return errors.Join(errs...)
}

// missedReason says why an occurrence has not gone out, or "" if it has.
func missedReason(o store.RunOutcome, after time.Duration) string {
	switch {
	case !o.Fired:
		return fmt.Sprintf("it did not fire: the scheduler may have stalled or crier was not running (checked %s after it was due)", after)
	case o.Run.Error != "":
		return "it did not go out: " + o.Run.Error
	case o.Run.TriggerID == 0:
		return "it fired but planned no messages"
	case o.Sent > 0:
		return ""
	case o.Pending > 0:
		return fmt.Sprintf("none of its %d messages has been sent yet (%d failed); the channel may be down", o.Pending+o.Failed, o.Failed)
	case o.Failed > 0:
		return fmt.Sprintf("all %d of its messages failed", o.Failed)
	default:
		return "it reached nobody: every recipient was suppressed"
	}
}

func (s *Scheduler) entry(name string) (entry, bool) {
	for _, e := range s.list() {
		if e.name == name {
			return e, true
		}
	}
	return entry{}, false
}
