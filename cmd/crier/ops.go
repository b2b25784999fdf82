package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// alertEvent is the template event an alert rule uses for an incident event.
func alertEvent(r *config.AlertRule, on string) string {
	if r.Template != "" {
		return r.Template
	}
	switch on {
	case "open":
		return templates.EventAlert
	case "resolve":
		return templates.EventResolve
	}
	return templates.EventUpdate
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// incidentRequest routes an incident event through the alert rules.
//
// An update or a resolution also reaches everyone an earlier alert about
// the incident reached on each rule (dispatch.Target.FollowUp): who was
// told hears the end, whatever the matrix says now. So a rule is skipped
// only for the opening alert: a rule the incident is no longer severe
// enough for still tells the people it told (FollowUpOnly), and a rule
// whose on: leaves the event out writes a suppressed row, reason
// rule_not_on_event, for each of them (Withhold).
func (a *app) incidentRequest(inc *incidents.Incident, u incidents.Update) dispatch.Request {
	req := dispatch.Request{Key: fmt.Sprintf("incident:%s:%d", inc.ID, u.Seq), Kind: "incident", Name: u.Kind, Incident: inc,
		Critical: inc.Severity == incidents.Critical}
	followUp := u.Kind == "update" || u.Kind == "resolve"
	for _, name := range sortedKeys(a.cfg.Alerts) {
		r := a.cfg.Alerts[name]
		t := dispatch.Target{Rule: name, Audience: r.Audience, Channels: r.Channels, Event: alertEvent(r, u.Kind),
			Fold: r.FoldMinor && inc.Severity == incidents.Minor, FollowUp: followUp}
		severe := inc.Severity.AtLeast(incidents.Severity(r.MinSeverity))
		if aud := a.cfg.Audiences[r.Audience]; aud != nil && !inc.Severity.AtLeast(incidents.Severity(aud.MinSeverity)) {
			severe = false
		}
		switch {
		case !slices.Contains(r.On, u.Kind):
			if !followUp {
				continue
			}
			t.Withhold = dispatch.ReasonRuleNotOnEvent
			t.WithholdDetail = fmt.Sprintf("alert rule %s does not send %s events (on: %s)", name, u.Kind, strings.Join(r.On, ", "))
		case !severe:
			if !followUp {
				continue
			}
			t.FollowUpOnly = true
		}
		req.Targets = append(req.Targets, t)
		if req.Ack == nil && r.Ack != nil && t.Withhold == "" {
			req.Ack = ackPolicy(r.Ack) // the first rule that asks sets the policy
		}
	}
	return req
}

// changeResult is what an incident change wrote.
type changeResult = dispatch.IncidentResult

// OpenIncident stores a new incident and plans its alerts, together.
func (a *app) OpenIncident(ctx context.Context, c incidents.Change) (changeResult, error) {
	inc, err := incidents.Open(c, a.env.now())
	if err != nil {
		return changeResult{}, err
	}
	var res changeResult
	err = a.st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateIncident(inc); err != nil {
			return err
		}
		res = changeResult{Incident: inc, Update: inc.Timeline[0]}
		return a.planIncident(tx, &res)
	})
	return res, err
}

// ChangeIncident applies an update or a resolution and plans its alerts, together.
func (a *app) ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (changeResult, error) {
	var res changeResult
	err := a.st.Write(ctx, func(tx *store.Tx) error {
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		u, err := inc.Apply(kind, c, a.env.now())
		if err != nil {
			return err
		}
		if err := tx.SaveIncidentUpdate(inc, u); err != nil {
			return err
		}
		res = changeResult{Incident: inc, Update: u}
		return a.planIncident(tx, &res)
	})
	return res, err
}

func (a *app) planIncident(tx *store.Tx, res *changeResult) error {
	req := a.incidentRequest(res.Incident, res.Update)
	if len(req.Targets) == 0 {
		return nil
	}
	out, err := a.planner.PlanTx(tx, req)
	res.Outcome = out
	return err
}

// Brief plans the named briefing for the occurrence due at due.
func (a *app) Brief(ctx context.Context, name string, due time.Time) (dispatch.Outcome, error) {
	b := a.cfg.Briefings[name]
	if b == nil {
		return dispatch.Outcome{}, fmt.Errorf("briefing %q is not in the config (known: %s)", name, strings.Join(sortedKeys(a.cfg.Briefings), ", "))
	}
	title := b.Title
	if title == "" {
		title = name
	}
	req := dispatch.Request{Key: "briefing:" + name + ":" + due.UTC().Format("2006-01-02T15:04Z"), Kind: "briefing", Name: name,
		BriefingName: title, Targets: []dispatch.Target{{Rule: name, Audience: b.Audience, Channels: b.Channels, Event: b.Template}}}
	if spec := a.schedule[name]; spec != "" {
		if s, err := scheduler.Parse(spec); err == nil {
			req.NextBriefing = s.Next(a.env.now())
		}
	}
	return a.planner.Plan(ctx, a.st, req)
}

// briefer adapts the app to the scheduler.
type briefer struct{ a *app }

func (b briefer) Brief(ctx context.Context, name string, due time.Time, late bool) (int64, error) {
	out, err := b.a.Brief(ctx, name, due)
	if err == nil {
		b.a.disp.Notify()
	}
	return out.TriggerID, err
}

// sendRequest is an ad-hoc broadcast.
type sendRequest struct {
	Audience string   `json:"audience"`
	Channels []string `json:"channels"`
	Subject  string   `json:"subject"`
	Body     string   `json:"body"`
	Critical bool     `json:"critical"`
	// Key is the caller's own key: a key is planned once. Without one, an
	// identical broadcast within broadcasts.repeat_window is not sent
	// again (see broadcast).
	Key string `json:"key"`
	// Repeat sends a broadcast without a key even if an identical one was
	// planned within the repeat window.
	Repeat bool `json:"repeat"`
	// Ack asks for acknowledgement (crier send --ack-within).
	Ack *config.Ack `json:"-"`
	// once is the trigger key's tail for a request that must not plan
	// twice (the dashboard's send button) but is otherwise without a key:
	// the repeat window applies to it.
	once string
}

// prices are the SMS prices configured per channel.
func (a *app) prices() map[string]dispatch.Price {
	out := map[string]dispatch.Price{}
	for name, c := range a.cfg.Channels {
		if c.PricePerSegment > 0 {
			out[name] = dispatch.Price{PerSegment: c.PricePerSegment, Currency: c.Currency}
		}
	}
	return out
}

// Send plans an ad-hoc message to an audience (see broadcast).
func (a *app) Send(ctx context.Context, r sendRequest) (broadcastResult, error) {
	return a.broadcast(ctx, r, false)
}

// sendRequest checks an ad-hoc message and builds its trigger. Without a
// key (r.Key or r.once) the trigger key is left empty: broadcast chooses it.
func (a *app) sendRequest(r sendRequest) (dispatch.Request, error) {
	var problems []string
	if r.Audience == "" {
		problems = append(problems, "--audience is required")
	} else if a.cfg.Audiences[r.Audience] == nil {
		problems = append(problems, fmt.Sprintf("--audience %q does not exist (known: %s)", r.Audience, strings.Join(sortedKeys(a.cfg.Audiences), ", ")))
	}
	if len(r.Channels) == 0 {
		problems = append(problems, "--channels is required (known: "+strings.Join(a.cfg.ChannelNames(), ", ")+")")
	}
	for _, c := range r.Channels {
		if a.cfg.Channels[c] == nil {
			problems = append(problems, fmt.Sprintf("--channels: %q does not exist (known: %s)", c, strings.Join(a.cfg.ChannelNames(), ", ")))
		}
	}
	if strings.TrimSpace(r.Body) == "" {
		problems = append(problems, "--body is required: the message text")
	}
	if p := autoKeyProblem(r.Key); p != "" {
		problems = append(problems, fmt.Sprintf("--key %q %s", r.Key, p))
	}
	if r.Repeat && r.Key != "" {
		problems = append(problems, "--repeat is for a message without --key: a new key already sends a new message")
	}
	problems = append(problems, a.sendAckProblems(r.Ack)...)
	if len(problems) > 0 {
		return dispatch.Request{}, errors.New(strings.Join(problems, "\n"))
	}
	key := ""
	switch {
	case r.Key != "":
		key = "send:" + r.Key
	case r.once != "":
		key = "send:" + r.once
	}
	return dispatch.Request{Key: key, Kind: "send", Name: r.Subject, Subject: r.Subject, Body: r.Body, Critical: r.Critical,
		Targets: []dispatch.Target{{Audience: r.Audience, Channels: r.Channels, Event: templates.EventMessage}}, Ack: ackPolicy(r.Ack)}, nil
}

// watches lists the briefings with a missed-briefing alarm.
func (a *app) watches() []scheduler.Watch {
	var out []scheduler.Watch
	for _, name := range sortedKeys(a.cfg.Briefings) {
		if al := a.cfg.Briefings[name].Alarm; al != nil && a.schedule[name] != "" {
			out = append(out, scheduler.Watch{Briefing: name, After: al.After})
		}
	}
	return out
}

// RaiseAlarm tells the briefing's alarm audience, over the alarm's own
// channels, that an occurrence has not gone out. The trigger key makes it
// once per occurrence however often the check runs.
func (a *app) RaiseAlarm(ctx context.Context, briefing string, due time.Time, why string) error {
	b := a.cfg.Briefings[briefing]
	if b == nil || b.Alarm == nil {
		return nil
	}
	title := b.Title
	if title == "" {
		title = briefing
	}
	local := due
	if s, err := scheduler.Parse(b.Schedule); err == nil {
		if next := s.Next(due.Add(-time.Minute)); !next.IsZero() {
			local = next // carries the schedule's zone
		}
	}
	req := dispatch.Request{Key: "alarm:" + briefing + ":" + due.UTC().Format("2006-01-02T15:04Z"), Kind: "send", Name: "missed-briefing",
		Subject:  fmt.Sprintf("Briefing not sent: %s due %s", title, local.Format("Mon 2 Jan 15:04 MST")),
		Body:     fmt.Sprintf("The %s due at %s has not gone out: %s. Check crier (crier log --trigger briefing:%s:%s) and send it by hand if needed (crier brief %s).", title, local.Format("15:04 MST on Mon 2 Jan"), why, briefing, due.UTC().Format("2006-01-02T15:04Z"), briefing),
		Critical: true, Targets: []dispatch.Target{{Audience: b.Alarm.Audience, Channels: b.Alarm.Channels, Event: templates.EventMessage}}}
	out, err := a.planner.Plan(ctx, a.st, req)
	if err != nil {
		return err
	}
	if out.Created {
		a.log.Error("missed-briefing alarm raised", "briefing", briefing, "due", due.UTC().Format(time.RFC3339), "why", why, "deliveries", out.Queued)
		a.disp.Notify()
	}
	return nil
}

// previewRequest builds the trigger a preview or pre-flight renders: a
// briefing, an incident's event, or an ad-hoc broadcast. Its key is never
// planned.
func (a *app) previewRequest(ctx context.Context, r server.PreflightRequest) (dispatch.Request, error) {
	given := 0
	for _, v := range []string{r.Briefing, r.Incident, r.Audience} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return dispatch.Request{}, fmt.Errorf("%w: give exactly one of briefing, incident or audience (a broadcast)", server.ErrBadRequest)
	}
	switch {
	case r.Audience != "":
		req, err := a.sendRequest(sendRequest{Audience: r.Audience, Channels: r.Channels, Subject: r.Subject, Body: r.Body, Critical: r.Critical, Key: "preview"})
		if err != nil {
			return req, fmt.Errorf("%w: %v", server.ErrBadRequest, err)
		}
		return req, nil
	case r.Briefing != "":
		b := a.cfg.Briefings[r.Briefing]
		if b == nil {
			return dispatch.Request{}, fmt.Errorf("%w: briefing %q is not in the config (known: %s)", server.ErrBadRequest, r.Briefing, strings.Join(sortedKeys(a.cfg.Briefings), ", "))
		}
		req := dispatch.Request{Key: "preview", Kind: "briefing", Name: r.Briefing, BriefingName: b.Title,
			Targets: []dispatch.Target{{Rule: r.Briefing, Audience: b.Audience, Channels: b.Channels, Event: b.Template}}}
		if s, err := scheduler.Parse(b.Schedule); err == nil && b.Schedule != "" {
			req.NextBriefing = s.Next(a.env.now())
		}
		return req, nil
	}
	inc, err := a.st.Incident(ctx, r.Incident)
	if err != nil {
		return dispatch.Request{}, err
	}
	u := inc.Timeline[len(inc.Timeline)-1]
	switch r.Event {
	case "":
	case "resolve":
		// What resolving it now would send: the incident as the resolution
		// leaves it (every impact restored), to everyone the resolution
		// would reach. An incident already resolved shows its resolution.
		if inc.Active() {
			if u, err = inc.Apply("resolve", incidents.Change{}, a.env.now()); err != nil {
				return dispatch.Request{}, err
			}
			break
		}
		u = incidents.Update{Seq: u.Seq, Kind: r.Event}
	case "open", "update":
		u = incidents.Update{Seq: u.Seq, Kind: r.Event}
	default:
		return dispatch.Request{}, fmt.Errorf("%w: event %q is not open, update or resolve", server.ErrBadRequest, r.Event)
	}
	req := a.incidentRequest(inc, u)
	req.Key = "preview"
	return req, nil
}

// Preflight serves the API's pre-flight.
func (a *app) Preflight(ctx context.Context, r server.PreflightRequest) (dispatch.Preflight, error) {
	req, err := a.previewRequest(ctx, r)
	if err != nil {
		return dispatch.Preflight{}, err
	}
	if len(req.Targets) == 0 {
		return dispatch.Preflight{Channels: map[string]*dispatch.ChannelPreflight{}}, nil
	}
	return a.planner.Preflight(ctx, a.st, req, a.prices())
}
