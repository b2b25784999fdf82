package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// ops_api.go is the app's side of the JSON API: broadcasts, subscribers
// and schedules, built on the same planner, store and scheduler as the
// CLI commands, so the API and `crier send`/`brief`/`subscribers import`
// cannot drift apart.

var (
	_ server.Broadcaster     = (*app)(nil)
	_ server.SubscriberAdmin = (*app)(nil)
	_ server.ScheduleRunner  = (*app)(nil)
)

// triggerKeyRE is what a caller-chosen broadcast key may look like: it
// goes into URLs (the progress link) and the log.
var triggerKeyRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// Broadcast pre-flights an ad-hoc message and, unless it is a pre-flight
// only, plans it: once per key, or without a key once per repeat window
// (see broadcast). A request that plans nothing new is not rendered.
func (a *app) Broadcast(ctx context.Context, r server.BroadcastRequest) (server.BroadcastResult, error) {
	if err := a.checkBroadcast(r).Err(); err != nil {
		return server.BroadcastResult{}, err
	}
	sr := sendRequest{Audience: r.Audience, Channels: r.Channels, Subject: r.Subject, Body: r.Body, Critical: r.Critical, Key: r.Key,
		Repeat: r.Repeat, Ack: broadcastAck(r.Ack)}
	if r.PreflightOnly {
		sr.Key, sr.Repeat = "preview", false // never planned
	}
	req, err := a.sendRequest(sr)
	if err != nil {
		return server.BroadcastResult{}, fmt.Errorf("%w: %v", server.ErrBadRequest, err)
	}
	if r.PreflightOnly {
		pf, err := a.planner.Preflight(ctx, a.st, req, a.prices())
		if err != nil {
			return server.BroadcastResult{}, err
		}
		return server.BroadcastResult{PreflightOnly: true, Preflight: &pf}, nil
	}
	res, err := a.broadcast(ctx, sr, true)
	if err != nil {
		return server.BroadcastResult{}, err
	}
	out := server.BroadcastResult{Outcome: &res.Outcome, Preflight: res.Preflight}
	if tr := res.RepeatOf; tr != nil {
		out.RepeatOf = &server.RepeatOf{TriggerID: tr.ID, Trigger: tr.Key, PlannedAt: tr.CreatedAt, Window: a.cfg.Broadcasts.RepeatWindow.String(),
			Message: a.repeatLine(tr, `"repeat": true`)}
	}
	return out, nil
}

// checkBroadcast names every problem of a broadcast by its JSON field.
func (a *app) checkBroadcast(r server.BroadcastRequest) fields.List {
	var errs fields.List
	switch {
	case r.Audience == "":
		errs.Add("audience", "", "is required: one of %s", strings.Join(sortedKeys(a.cfg.Audiences), ", "))
	case a.cfg.Audiences[r.Audience] == nil:
		errs.Add("audience", r.Audience, "is not an audience in the config: use one of %s", strings.Join(sortedKeys(a.cfg.Audiences), ", "))
	}
	if len(r.Channels) == 0 {
		errs.Add("channels", "", "is required: one or more of %s", strings.Join(a.cfg.ChannelNames(), ", "))
	}
	for i, c := range r.Channels {
		if a.cfg.Channels[c] == nil {
			errs.Add(fmt.Sprintf("channels[%d]", i), c, "is not a channel in the config: use one of %s", strings.Join(a.cfg.ChannelNames(), ", "))
		}
	}
	if strings.TrimSpace(r.Body) == "" {
		errs.Add("body", "", "is required: the message text")
	}
	if r.Key != "" && !triggerKeyRE.MatchString(r.Key) {
		errs.Add("key", r.Key, "must be 1-100 of A-Z a-z 0-9 . _ : - (or left out: an identical broadcast within the repeat window is not sent again)")
	} else if p := autoKeyProblem(r.Key); p != "" {
		errs.Add("key", r.Key, "%s", p)
	}
	if r.Repeat && r.Key != "" {
		errs.Add("repeat", "true", "is for a broadcast without a key: a new key already sends a new broadcast")
	}
	if k := r.Ack; k != nil {
		if d, err := time.ParseDuration(k.Within); err != nil || d < time.Minute {
			errs.Add("ack.within", k.Within, "must be a duration of at least 1m, like 15m: how long recipients have to acknowledge")
		}
		if k.Quorum < 0 {
			errs.Add("ack.quorum", fmt.Sprint(k.Quorum), "must be 0 (everyone) or more")
		}
		for i, c := range k.Escalate {
			if a.cfg.Channels[c] == nil {
				errs.Add(fmt.Sprintf("ack.escalate[%d]", i), c, "is not a channel in the config: use one of %s", strings.Join(a.cfg.ChannelNames(), ", "))
			}
		}
		if k.Deputy != "" && a.cfg.Audiences[k.Deputy] == nil {
			errs.Add("ack.deputy", k.Deputy, "is not an audience in the config: use one of %s", strings.Join(sortedKeys(a.cfg.Audiences), ", "))
		}
		if a.acks == nil {
			errs.Add("ack", "", "needs webhooks.ack_secret in the config to sign acknowledgement links")
		}
	}
	return errs
}

// broadcastAck turns the API's acknowledgement request (already checked)
// into the config's form.
func broadcastAck(k *server.BroadcastAck) *config.Ack {
	if k == nil {
		return nil
	}
	d, _ := time.ParseDuration(k.Within)
	return &config.Ack{Within: d, Quorum: k.Quorum, Escalate: k.Escalate, Deputy: k.Deputy}
}

// Progress counts a trigger's deliveries by status, and who acknowledged.
func (a *app) Progress(ctx context.Context, key string) (server.Progress, error) {
	tr, ok, err := a.st.TriggerByKey(ctx, key)
	if err != nil {
		return server.Progress{}, err
	}
	if !ok {
		return server.Progress{}, fmt.Errorf("trigger %q: %w (a broadcast's answer gives its trigger key)", key, store.ErrNotFound)
	}
	counts, err := a.st.Counts(ctx, []int64{tr.ID})
	if err != nil {
		return server.Progress{}, fmt.Errorf("count deliveries of %s: %w", key, err)
	}
	acks, err := a.st.Acks(ctx, tr.ID)
	if err != nil {
		return server.Progress{}, err
	}
	p := server.Progress{TriggerID: tr.ID, Trigger: tr.Key, Kind: tr.Kind, Name: tr.Name, IncidentID: tr.IncidentID, PlannedAt: tr.CreatedAt,
		Counts: map[string]int{"acknowledged": len(acks)}, Done: true}
	for _, st := range []string{store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusDelivered, store.StatusFailed,
		store.StatusExpired, store.StatusSuppressed, store.StatusUnknown} {
		p.Counts[st] = 0
	}
	for st, n := range counts {
		p.Counts[st] += n
		p.Total += n
		if !store.Final(st) && n > 0 {
			p.Done = false
		}
	}
	return p, nil
}

// Subscribers lists every subscriber in the store.
func (a *app) Subscribers(ctx context.Context) ([]subscribers.Subscriber, error) {
	return a.st.Subscribers(ctx)
}

// SaveSubscribers stores normalised subscribers with source "api" in one
// transaction, after checking each against mode and against the config:
// people defined in the config file are refused, because the next start
// would put the file's version back.
func (a *app) SaveSubscribers(ctx context.Context, list []subscribers.Subscriber, mode server.SaveMode) (server.SaveResult, error) {
	managed := map[string]bool{}
	for _, p := range a.cfg.People() {
		managed[p.ID] = true
	}
	var res server.SaveResult
	err := a.st.Write(ctx, func(tx *store.Tx) error {
		res = server.SaveResult{}
		exists := map[string]bool{}
		if err := tx.EachSubscriber(func(s *subscribers.Subscriber) error { exists[s.ID] = true; return nil }); err != nil {
			return err
		}
		var conflicts server.SubscriberConflicts
		for i := range list {
			id := list[i].ID
			c := server.SubscriberConflict{Index: i, ID: id}
			switch {
			case managed[id]:
				c.Code, c.Msg = "config_managed", fmt.Sprintf("subscriber %s is defined in the config file: change it there (the next start would undo a change made here)", id)
			case mode == server.SaveCreate && exists[id]:
				c.Code, c.Msg = "exists", fmt.Sprintf("subscriber %s already exists: change it with PUT /api/v1/subscribers/%s", id, id)
			case mode == server.SaveUpdate && !exists[id]:
				c.Code, c.Msg = "not_found", fmt.Sprintf("subscriber %s does not exist: create it with POST /api/v1/subscribers", id)
			default:
				if exists[id] {
					res.Updated++
				} else {
					res.Created++
				}
				continue
			}
			conflicts = append(conflicts, c)
		}
		if len(conflicts) > 0 {
			return conflicts
		}
		return tx.UpsertSubscribers(list, "api")
	})
	return res, err
}

// FireBriefing plans the named briefing now, as `crier brief NAME` does.
func (a *app) FireBriefing(ctx context.Context, name string) (dispatch.Outcome, error) {
	if a.cfg.Briefings[name] == nil {
		return dispatch.Outcome{}, fmt.Errorf("briefing %q is not in the config (known: %s): %w", name, strings.Join(sortedKeys(a.cfg.Briefings), ", "), store.ErrNotFound)
	}
	return a.Brief(ctx, name, a.env.now().Truncate(time.Minute))
}

// firedSlack is how long after its due time an occurrence may still be
// on its way (cron ticks on the minute) before it counts as missed.
const firedSlack = 2 * time.Minute

// Schedules lists every briefing with its next n fire times in its zone,
// its latest recorded occurrence and a state: late or missed runs stand
// out without reading the log.
func (a *app) Schedules(ctx context.Context, n int) ([]server.Schedule, error) {
	now := a.env.now()
	out := []server.Schedule{}
	for _, name := range sortedKeys(a.cfg.Briefings) {
		b := a.cfg.Briefings[name]
		sc := server.Schedule{Briefing: name, Title: b.Title, Spec: b.Schedule, Next: []server.FireTime{}}
		if b.Schedule == "" {
			sc.State, sc.Why = "unscheduled", "no schedule: it is sent by hand (crier brief "+name+", or POST /api/v1/schedules/"+name+"/fire)"
			out = append(out, sc)
			continue
		}
		sched, err := scheduler.Parse(b.Schedule)
		if err != nil {
			return nil, fmt.Errorf("briefings.%s.schedule: %w", name, err)
		}
		zone := scheduleZone(sched, now)
		sc.TimeZone = zone.String()
		for _, t := range scheduler.Next(sched, now, n) {
			t = t.In(zone)
			sc.Next = append(sc.Next, server.FireTime{At: t, Local: t.Format("Mon 2006-01-02 15:04 MST"), ClockChange: scheduler.ClockChange(t)})
		}
		run, ok, err := a.st.LastRun(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			sc.State, sc.Why = "never_run", "no occurrence has been recorded yet"
			out = append(out, sc)
			continue
		}
		o, err := a.st.RunOutcome(ctx, name, run.DueAt)
		if err != nil {
			return nil, err
		}
		sc.LastRun = &server.ScheduleRun{DueAt: run.DueAt.In(zone), FiredAt: run.FiredAt.In(zone), Late: run.Late, TriggerID: run.TriggerID,
			Error: run.Error, Sent: o.Sent, Pending: o.Pending, Failed: o.Failed, Suppressed: o.Suppressed}
		sc.State, sc.Why = runState(sched, now, sc.LastRun)
		out = append(out, sc)
	}
	return out, nil
}

// scheduleZone is the zone a schedule fires in: its CRON_TZ, or else the
// zone of the clock it is run with (cron's own rule).
func scheduleZone(sched cron.Schedule, now time.Time) *time.Location {
	if ss, ok := sched.(*cron.SpecSchedule); ok && ss.Location != time.Local {
		return ss.Location
	}
	return now.Location()
}

// nexter is the part of a cron schedule runState needs.
type nexter interface{ Next(time.Time) time.Time }

// runState judges a schedule from its latest recorded run: an occurrence
// after it that is overdue was missed; otherwise the run's own outcome.
func runState(sched nexter, now time.Time, r *server.ScheduleRun) (state, why string) {
	if next := sched.Next(r.DueAt); !next.IsZero() && now.Sub(next) > firedSlack {
		return "missed", fmt.Sprintf("the occurrence due at %s did not fire: crier was not running or the scheduler stalled", next.Format("Mon 2006-01-02 15:04 MST"))
	}
	switch {
	case strings.Contains(r.Error, "missed"):
		return "missed", r.Error
	case r.Error != "":
		return "failed", "it did not go out: " + r.Error
	case r.Failed > 0 && r.Sent == 0 && r.Pending == 0:
		return "failed", fmt.Sprintf("all %d of its messages failed", r.Failed)
	case r.Late:
		return "late", fmt.Sprintf("fired %s after it was due (crier was not running at the time)", r.FiredAt.Sub(r.DueAt).Round(time.Second))
	case r.Pending > 0 && r.Sent == 0:
		return "pending", fmt.Sprintf("none of its %d messages has been sent yet", r.Pending+r.Failed)
	}
	return "ok", ""
}
