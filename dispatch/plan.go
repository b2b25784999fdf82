package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// Audience is a named set of subscribers.
type Audience struct {
	Name     string
	Selector subscribers.Selector
}

// Target is one audience reached over some channels with one template event.
type Target struct {
	// Rule names the alert rule (or the briefing) this target comes from;
	// every delivery it plans records it, so an incident's later events
	// can find everyone the rule reached.
	Rule     string
	Audience string
	Channels []string
	// Event names the templates to render: alert, update, resolve,
	// briefing or message.
	Event string
	// Fold records the target's deliveries as suppressed (reason folded)
	// instead of sending them: a minor update that the next briefing
	// carries.
	Fold bool
	// FollowUp, for an incident's update or resolution, also selects
	// everyone an earlier delivery about the incident on Rule reached
	// (see followUps), whatever the audience selects now, in their own
	// language and over Channels: who was told hears the end. Those it
	// cannot tell (no address now, opted out, no longer subscribers) get a
	// suppressed row saying why.
	FollowUp bool
	// FollowUpOnly selects nobody through the audience: only those
	// FollowUp adds. The rule would not alert on the incident as it is
	// now (below its min_severity), but still tells the people it told.
	FollowUpOnly bool
	// Withhold, when set, is why the target sends nothing: everyone Rule
	// reached before gets a suppressed row with this reason and
	// WithholdDetail, and the audience selects nobody (a rule whose on no
	// longer lists the event: reason rule_not_on_event).
	Withhold       string
	WithholdDetail string
	// selector, when set, is used instead of the named audience (an
	// escalation rung to named subscribers).
	selector *subscribers.Selector
}

// Request is one trigger to plan.
type Request struct {
	// Key is the trigger's idempotency key: planning the same key twice
	// writes nothing the second time.
	Key string
	// Kind is briefing, incident or send.
	Kind string
	// Name is the briefing name, the incident event or the broadcast's name.
	Name    string
	Targets []Target
	// Incident is the incident the trigger is about (kind incident).
	Incident *incidents.Incident
	// Critical deliveries go first and ignore quiet hours.
	Critical bool
	// Subject and Body are an ad-hoc message's content (event message).
	Subject, Body string
	// BriefingName is the briefing's display name.
	BriefingName string
	// NextBriefing is when the briefing after this one is due (zero if unknown).
	NextBriefing time.Time
	// Ack, when set, asks every recipient to acknowledge (see AckPolicy):
	// the deliveries are marked as asking for it and the policy is stored
	// with the trigger, in the same transaction.
	Ack *AckPolicy
	// EscalatesID links every delivery planned to the delivery it
	// escalates (a deputy audience told that someone did not acknowledge).
	EscalatesID int64

	triggerID int64     // set while planning, for acknowledgement links
	ackDue    time.Time // when acknowledgement is due
	// resumedAt is when a plan left part-way is being finished: quiet
	// hours are judged then, everything else as at the trigger.
	resumedAt time.Time
}

// Outcome is what planning wrote.
type Outcome struct {
	TriggerID  int64          `json:"trigger_id"`
	Key        string         `json:"trigger"`
	Created    bool           `json:"created"` // false when the trigger had been planned before
	Queued     int            `json:"queued"`
	Suppressed int            `json:"suppressed"`
	Deferred   int            `json:"deferred"`
	ByChannel  map[string]int `json:"by_channel"`
	// Failed counts deliveries that could not be rendered after sending
	// had begun (see Plan); each is in the log as failed, reason
	// render_error. Errors says why.
	Failed int      `json:"failed,omitempty"`
	Errors []string `json:"errors,omitempty"`
	// Planning is set when another process is still planning the trigger:
	// Queued counts what it has written so far.
	Planning bool `json:"planning,omitempty"`
}

// IncidentResult is what an incident change wrote: the incident, its new
// timeline entry and the deliveries it planned.
type IncidentResult struct {
	Incident *incidents.Incident `json:"incident"`
	Update   incidents.Update    `json:"update"`
	Outcome  Outcome             `json:"deliveries"`
}

// Planner renders triggers into deliveries.
type Planner struct {
	tmpl      *templates.Set
	kinds     map[string]channels.Kind
	audiences map[string]Audience
	retry     RetryPolicy
	now       func() time.Time
	dashboard string
	channels  map[string]ChannelRules

	// criticalOverridesOptOut: see PlannerOptions.CriticalOverridesOptOut.
	criticalOverridesOptOut bool
	observer                Observer
	acks                    *AckSigner
	// planning in chunks: see PlannerOptions.ChunkSize.
	chunkSize, firstChunk int
	onCommit              func()
}

// ChannelRules are a channel's content rules.
type ChannelRules struct {
	// MaxMarking is the highest protective marking the channel may carry;
	// more sensitive text is withheld with a pointer (default OFFICIAL).
	MaxMarking incidents.Marking
	// MaxSegments caps an SMS: a longer text is shortened at a word
	// boundary with a pointer (0: no cap).
	MaxSegments int
	// CapMax and CapWindow cap messages per subscriber on the channel;
	// the excess is suppressed (reason capped) and folded into one digest
	// sent when the window ends. Critical messages are never capped.
	CapMax    int
	CapWindow time.Duration
}

// PlannerOptions configure a Planner.
type PlannerOptions struct {
	Templates    *templates.Set
	Channels     map[string]channels.Kind // instance name → kind
	Audiences    []Audience
	Retry        RetryPolicy
	Now          func() time.Time
	DashboardURL string
	// Rules are per-channel content rules (marking, SMS length, caps).
	Rules map[string]ChannelRules
	// CriticalOverridesOptOut queues critical messages even to addresses on
	// the opt-out list (a STOP reply, a provider's 21610), each with reason
	// opt_out_overridden and an event; a subscriber's own opted_out kinds
	// from the config still hold (sms_replies.critical_overrides_opt_out).
	CriticalOverridesOptOut bool
	// Observer, if set, hears about every delivery planned as suppressed
	// (status suppressed, its reason, no latency) once the plan's
	// transaction has committed: the dispatcher reports the rest.
	Observer Observer
	// Acks signs the acknowledgement links put in messages that ask for
	// acknowledgement; nil puts in none (recipients can still reply).
	Acks *AckSigner
	// ChunkSize is how many deliveries Plan commits at a time once the
	// first chunk, FirstChunk deliveries, has been committed (defaults
	// 5000 and 200; a negative ChunkSize plans every trigger in one
	// transaction). OnCommit, if set, is called after each chunk but the
	// last commits (the dispatcher's Notify), so sending starts while the
	// rest is planned.
	ChunkSize, FirstChunk int
	OnCommit              func()
}

// NewPlanner builds a planner.
func NewPlanner(o PlannerOptions) *Planner {
	o.Retry.Defaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Planner{tmpl: o.Templates, kinds: o.Channels, audiences: map[string]Audience{}, retry: o.Retry, now: o.Now, dashboard: o.DashboardURL,
		channels: o.Rules, criticalOverridesOptOut: o.CriticalOverridesOptOut, observer: o.Observer, acks: o.Acks,
		chunkSize: o.ChunkSize, firstChunk: o.FirstChunk, onCommit: o.OnCommit}
	if p.chunkSize == 0 {
		p.chunkSize = 5000
	}
	if p.firstChunk <= 0 {
		p.firstChunk = 200
	}
	for _, a := range o.Audiences {
		p.audiences[a.Name] = a
	}
	return p
}

// Plan plans req in its own transactions. A trigger whose audience is
// larger than one chunk is committed a chunk at a time, so the dispatcher
// (told through PlannerOptions.OnCommit) starts sending the first chunk
// while the rest is planned: every delivery is in SQLite before it is
// sent, and the trigger holds the request and how far planning got, so a
// crash part-way is finished by ResumePlans (or by planning the same key
// again) with each delivery written once.
//
// Everything that can be checked before the first commit is: the request,
// and every template the audience's locales need (rendered once with the
// trigger's data). A template that fails only for some recipients' data
// after sending has begun cannot stop what is already sent: those
// deliveries are written as failed (reason render_error) and the outcome
// lists the error. Escalations, being small, plan in one transaction.
func (p *Planner) Plan(ctx context.Context, st Writer, req Request) (Outcome, error) {
	var out Outcome
	err := st.Write(ctx, func(tx *store.Tx) error {
		var err error
		out, err = p.planTx(tx, req, p.chunkable(req))
		return err
	})
	return out, err
}

// ResumePlans finishes every plan that a process left part-way, once its
// lease has run out, and reports how many it finished. Each delivery is
// written once: planning carries on after the last subscriber committed.
func (p *Planner) ResumePlans(ctx context.Context, st PlanStore) (int, error) {
	trs, err := st.UnfinishedPlans(ctx, p.now())
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, tr := range trs {
		// One plan that cannot be finished (its audience or channel was
		// removed from the config) must not hold up the others.
		var req Request
		if err := json.Unmarshal([]byte(tr.PlanSpec), &req); err != nil {
			errs = append(errs, fmt.Errorf("plan %s: read the recorded request: %w", tr.Key, err))
			continue
		}
		if _, err := p.Plan(ctx, st, req); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// chunkable reports whether req may be planned in chunks.
func (p *Planner) chunkable(req Request) bool {
	if p.chunkSize <= 0 || req.EscalatesID != 0 {
		return false
	}
	for _, t := range req.Targets {
		// An incident's follow-ups are planned with the incident's change
		// (PlanTx); precheck could not see who they reach.
		if t.selector != nil || t.FollowUp {
			return false
		}
	}
	return true
}

// PlanTx selects each target's audience, renders one message per
// subscriber × channel and writes every delivery inside tx. If any
// message cannot be rendered (a missing Welsh template, a template error)
// it returns an error and tx must be rolled back: nothing is half-planned.
func (p *Planner) PlanTx(tx *store.Tx, req Request) (Outcome, error) {
	return p.planTx(tx, req, false)
}

// planLease is how long a planner's claim on an unfinished plan lasts
// without a commit before another process may finish it.
const planLease = time.Minute

func (p *Planner) planTx(tx *store.Tx, req Request, chunked bool) (Outcome, error) {
	if err := p.check(req); err != nil {
		return Outcome{}, err
	}
	now := p.now()
	tr := &store.Trigger{Key: req.Key, Kind: req.Kind, Name: req.Name, CreatedAt: now}
	if req.Incident != nil {
		tr.IncidentID = req.Incident.ID
	}
	created, err := tx.CreateTrigger(tr)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{TriggerID: tr.ID, Key: tr.Key, Created: created, ByChannel: map[string]int{}}
	cursor, resumed := "", false
	var lease time.Time // the planning lease this planner holds (chunked or resumed)
	switch {
	case created && chunked:
		if err := p.precheck(tx, req); err != nil {
			return out, err
		}
		spec, err := json.Marshal(req)
		if err != nil {
			return out, fmt.Errorf("plan %s: record the request: %w", req.Key, err)
		}
		lease = p.now().Add(planLease)
		if err := tx.SetPlanning(tr.ID, string(spec), "", lease); err != nil {
			return out, err
		}
	case created:
	case tr.PlanUntil.IsZero():
		out.Queued = tr.Planned
		return out, nil
	case tr.PlanUntil.After(p.now()):
		// Another planner is at work on it.
		n, err := tx.CountPlanned(tr.ID)
		out.Queued, out.Planning = n, true
		return out, err
	default:
		// Its planner died part-way: finish the plan it recorded.
		// A fresh value: decoding into req would write into slices it
		// shares with the caller's request.
		var spec Request
		if err := json.Unmarshal([]byte(tr.PlanSpec), &spec); err != nil {
			return out, fmt.Errorf("plan %s: read the recorded request: %w", req.Key, err)
		}
		req = spec
		lease = p.now().Add(planLease)
		if err := tx.SetPlanning(tr.ID, "", tr.PlanCursor, lease); err != nil {
			return out, err
		}
		req.resumedAt = p.now()
		// Inside a caller's transaction (PlanTx, chunked false) the rest
		// is written in that one transaction, not committed in chunks.
		now, cursor, resumed = tr.CreatedAt, tr.PlanCursor, true
		out.Created = true // new deliveries are planned: those its planner did not reach
	}
	enq, err := tx.Enqueuer(tr.ID)
	if err != nil {
		return out, err
	}
	defer enq.Close()
	type suppression struct{ channel, kind, reason string }
	suppressed := map[suppression]int{}
	report := func() {
		if p.observer == nil || len(suppressed) == 0 {
			return
		}
		batch := suppressed
		suppressed = map[suppression]int{}
		tx.AfterCommit(func() {
			for k, n := range batch {
				for range n {
					p.observer.Observed(k.channel, channels.Kind(k.kind), store.StatusSuppressed, k.reason, 0)
				}
			}
		})
	}
	req.triggerID = tr.ID
	if req.Ack != nil {
		req.ackDue = now.Add(req.Ack.Within)
		// Before any delivery asking for acknowledgement is committed.
		if err := tx.SetAckPolicy(store.AckPolicy{TriggerID: tr.ID, Within: req.Ack.Within, Quorum: req.Ack.Quorum, Ladder: req.Ack.Ladder,
			Deputy: req.Ack.Deputy, DueAt: req.ackDue}); err != nil {
			return out, err
		}
	}
	// Chunks: the first is small so the first message goes at once; the
	// rest are larger so planning keeps its pace.
	limit, inChunk, last, committed := p.firstChunk, 0, "", resumed
	err = p.each(tx, req, now, cursor, func(j *planJob, r templates.Rendered, renderErr error) error {
		nd := &j.nd
		if chunked && nd.SubscriberID != last && last != "" && inChunk >= limit {
			// A subscriber's deliveries are never split across chunks, so
			// the cursor says exactly who is planned.
			report()
			// Only while the plan is still ours: a planner stalled past its
			// lease may have been overtaken by another process.
			next := p.now().Add(planLease)
			if err := tx.AdvancePlanning(tr.ID, last, lease, next); err != nil {
				return fmt.Errorf("plan %s: %w", req.Key, err)
			}
			lease = next
			if p.onCommit != nil {
				tx.AfterCommit(p.onCommit)
			}
			if err := enq.Continue(); err != nil {
				return err
			}
			// Chunks double up to ChunkSize: each commit early on lets the
			// dispatcher claim what is there, later ones keep planning fast.
			committed, inChunk, limit = true, 0, min(2*limit, max(p.chunkSize, p.firstChunk))
		}
		last = nd.SubscriberID
		inChunk++
		if renderErr != nil {
			if !committed {
				return renderErr // nothing is committed yet: nothing is planned
			}
			nd.Status, nd.Reason, nd.Detail = store.StatusFailed, "render_error", renderErr.Error()
			nd.Subject, nd.Text, nd.HTML = "", "", ""
			out.Failed++
			if len(out.Errors) < 10 {
				out.Errors = append(out.Errors, renderErr.Error())
			}
		}
		// each hands over every subscriber × channel once and the trigger
		// is new, so every delivery here is a new row.
		nd.IncidentID = tr.IncidentID
		nd.Ack = req.Ack != nil && nd.Status != store.StatusSuppressed && nd.Status != store.StatusFailed
		nd.EscalatesID = req.EscalatesID
		if nd.Reason == "capped" {
			if err := p.foldIntoDigest(tx, nd, r, j.locale, now); err != nil {
				return err
			}
			nd.Subject, nd.Text, nd.HTML = "", "", "" // the digest carries it; no body is stored twice
		}
		if err := enq.Add(nd); err != nil {
			return err
		}
		switch {
		case nd.Status == store.StatusSuppressed:
			out.Suppressed++
			suppressed[suppression{nd.Channel, nd.Kind, nd.Reason}]++
		case nd.Status == store.StatusFailed:
		default:
			out.Queued++
			out.ByChannel[nd.Channel]++
			if nd.Reason == "quiet_hours" {
				out.Deferred++
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	if err := enq.Flush(); err != nil {
		return out, err
	}
	if req.Critical && p.criticalOverridesOptOut {
		if err := tx.LogOptOutOverrides(tr.ID); err != nil {
			return out, err
		}
	}
	planned := enq.Written()
	if resumed {
		if planned, err = tx.CountPlanned(tr.ID); err != nil {
			return out, err
		}
	}
	if chunked || resumed {
		if err := tx.FinishPlanning(tr.ID, planned, lease); err != nil {
			return out, fmt.Errorf("plan %s: %w", req.Key, err)
		}
	} else if err := tx.SetPlanned(tr.ID, planned); err != nil {
		return out, err
	}
	report()
	return out, nil
}

// precheck renders, before anything of a chunked plan is committed, every
// template the request needs in every locale subscribers have, with the
// trigger's data: a missing translation or a broken template stops the
// plan with nothing written, as it would in one transaction.
func (p *Planner) precheck(tx *store.Tx, req Request) error {
	locales, err := tx.SubscriberLocales()
	if err != nil {
		return err
	}
	base, err := p.baseData(tx, req, p.now())
	if err != nil {
		return err
	}
	var nations []string
	if req.Incident != nil {
		nations = req.Incident.Nations()
	}
	for _, t := range req.Targets {
		sel := p.audiences[t.Audience].Selector
		if req.Incident == nil {
			sel.IncidentNations = false // as each does
		}
		for _, ch := range t.Channels {
			kind := p.kinds[ch]
			for _, l := range locales {
				d := base
				d.RecipientID, d.RecipientLocale = l[1], l[0]
				_, err := p.tmpl.Render(t.Event, kind, l[0], d)
				if err == nil {
					continue
				}
				// It matters only if someone in the audience reads that
				// language: find the first.
				who := ""
				errFound := errors.New("found")
				if serr := tx.EachSubscriberWithLocale(l[0], func(s *subscribers.Subscriber) error {
					if sel.Match(s, nations) {
						who = s.ID
						return errFound
					}
					return nil
				}); serr != nil && !errors.Is(serr, errFound) {
					return serr
				}
				if who != "" {
					return fmt.Errorf("plan %s: render %s %s for %s (locale %s): %w; nothing was sent", req.Key, t.Event, kind, who, l[0], err)
				}
			}
		}
	}
	return nil
}

// foldIntoDigest adds a capped message to the subscriber's digest for the
// channel's current cap window: one message, queued until the window ends,
// listing everything held back (the first line of each).
func (p *Planner) foldIntoDigest(tx *store.Tx, nd *store.NewDelivery, r templates.Rendered, locale string, now time.Time) error {
	rules := p.channels[nd.Channel]
	start := now.Truncate(rules.CapWindow)
	end := start.Add(rules.CapWindow)
	id, err := tx.FoldIntoDigest(store.DigestItem{Channel: nd.Channel, Kind: nd.Kind, SubscriberID: nd.SubscriberID, Address: nd.Address,
		WindowStart: start, WindowEnd: end, Header: templates.DigestHeader(locale), Line: templates.DigestLine(r.Subject, r.Text),
		Deadline: end.Add(p.retry.Deadline)})
	if err != nil {
		return err
	}
	if id == 0 {
		nd.Detail += "; its digest had already gone out, so it is not sent"
		return nil
	}
	nd.Detail += fmt.Sprintf("; folded into digest delivery %d, sent at %s", id, end.UTC().Format("15:04 MST"))
	return nil
}

func (p *Planner) check(req Request) error {
	var errs []string
	if req.Key == "" {
		errs = append(errs, "the trigger has no key")
	}
	if len(req.Targets) == 0 {
		errs = append(errs, "the trigger has no audience")
	}
	errs = append(errs, p.checkAck(req.Ack)...)
	for _, t := range req.Targets {
		if _, ok := p.audiences[t.Audience]; !ok && t.selector == nil {
			errs = append(errs, fmt.Sprintf("audience %q is not defined in the config", t.Audience))
		}
		for _, c := range t.Channels {
			if _, ok := p.kinds[c]; !ok {
				errs = append(errs, fmt.Sprintf("channel %q is not defined in the config", c))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New("plan: " + strings.Join(errs, "; "))
	}
	return nil
}

func zone(cache map[string]*time.Location, name string) *time.Location {
	if loc, ok := cache[name]; ok {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		loc = time.UTC
	}
	cache[name] = loc
	return loc
}

// quietEnd reports whether now falls in q (in loc) and when it ends.
func quietEnd(q subscribers.QuietHours, now time.Time, loc *time.Location) (time.Time, bool) {
	if !q.Contains(now, loc) {
		return time.Time{}, false
	}
	var h, m int
	if _, err := fmt.Sscanf(q.End, "%d:%d", &h, &m); err != nil {
		return time.Time{}, false
	}
	local := now.In(loc)
	end := time.Date(local.Year(), local.Month(), local.Day(), h, m, 0, 0, loc)
	if !end.After(now) {
		end = time.Date(local.Year(), local.Month(), local.Day()+1, h, m, 0, 0, loc)
	}
	return end, true
}

// baseData is the part of the template data every recipient shares.
func (p *Planner) baseData(tx *store.Tx, req Request, now time.Time) (templates.Data, error) {
	d := templates.Data{Trigger: req.Key, Now: now, Subject: req.Subject, Body: req.Body, BriefingName: req.BriefingName}
	if req.Incident != nil {
		inc := incidentData(req.Incident)
		d.IncidentID, d.Title, d.Severity, d.Status, d.Summary, d.UpdateText = inc.IncidentID, inc.Title, inc.Severity, inc.Status, inc.Summary, inc.UpdateText
		d.OpenedAt, d.UpdatedAt, d.Impacts, d.Timeline = inc.OpenedAt, inc.UpdatedAt, inc.Impacts, inc.Timeline
		d.Marking = inc.Marking
		d.ImpactChanges = impactChanges(req.Incident)
		if p.dashboard != "" {
			d.DashboardURL = strings.TrimSuffix(p.dashboard, "/") + "/incidents/" + req.Incident.ID
		}
	}
	if req.Kind == "briefing" && p.dashboard != "" {
		d.DashboardURL = strings.TrimSuffix(p.dashboard, "/") + "/"
	}
	return d, nil
}

func incidentData(inc *incidents.Incident) templates.Incident {
	out := templates.Incident{IncidentID: inc.ID, Title: inc.Title, Severity: string(inc.Severity), Status: string(inc.Status),
		Summary: inc.Summary, OpenedAt: inc.OpenedAt, UpdatedAt: inc.UpdatedAt, ResolvedAt: inc.ResolvedAt, Marking: string(inc.Marking)}
	for _, im := range inc.Impacts {
		out.Impacts = append(out.Impacts, templates.Impact{Service: im.Service, Nation: im.Nation, Status: string(im.Status), Workaround: im.Workaround})
	}
	for _, u := range inc.Timeline {
		out.Timeline = append(out.Timeline, entryData(u))
	}
	if n := len(inc.Timeline); n > 0 {
		out.UpdateText = inc.Timeline[n-1].Text
	}
	return out
}

// impactChanges are the cells the incident's latest timeline entry (the
// event being sent) changed, for the templates to say what was restored.
func impactChanges(inc *incidents.Incident) []templates.ImpactChange {
	n := len(inc.Timeline)
	if n == 0 {
		return nil
	}
	var out []templates.ImpactChange
	for _, c := range inc.Changes(inc.Timeline[n-1].Seq) {
		out = append(out, templates.ImpactChange{Service: c.Service, Nation: c.Nation, From: string(c.From), To: string(c.To), Workaround: c.Workaround})
	}
	return out
}
