package dispatch

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// Suppression reasons of an incident's follow-ups: someone an earlier
// delivery about the incident reached who is not told of this event.
const (
	// ReasonRuleNotOnEvent: the alert rule that told them no longer sends
	// this event (its on: leaves it out).
	ReasonRuleNotOnEvent = "rule_not_on_event"
	// ReasonRuleRemoved: the alert rule that told them is no longer in
	// the config.
	ReasonRuleRemoved = "rule_removed"
	// ReasonSubscriberRemoved: they are no longer a subscriber.
	ReasonSubscriberRemoved = "subscriber_removed"
)

// followUps is who an incident's earlier deliveries reached, per alert
// rule, read once per plan (store.EachReached says which deliveries count
// as having reached someone). Who was told hears the end: a target that
// follows up (Target.FollowUp) also selects everyone its rule reached,
// whatever its audience selects now; and everyone reached gets a row for
// the event, sent or suppressed with the reason.
type followUps struct {
	incident string
	// byRule holds, per rule of a target that follows up, the
	// subscribers it reached.
	byRule map[string]map[string]bool
	// orphaned holds, per subscriber, what rules no target carries (rules
	// removed from the config) reached them on.
	orphaned map[string][]store.Reached
	// unseen holds every subscriber in byRule or orphaned whom the
	// subscriber walk has not met (yet): those left at its end are no
	// longer subscribers. A set, not a merge of two sorted lists, so that
	// nothing depends on the database's collation of ids.
	unseen map[string]bool
	// whys and heard are note's words per rule, made once: most
	// follow-ups of a rule share one detail.
	whys, heard map[string]string
}

// loadFollowUps reads who the incident's earlier deliveries reached, when
// a target of req follows the incident up; otherwise it returns nil (no
// follow-ups, at no cost). Such a trigger is planned in one pass, never
// resumed part-way (see chunkable).
func (p *Planner) loadFollowUps(tx *store.Tx, req Request) (*followUps, error) {
	if req.Incident == nil || !slices.ContainsFunc(req.Targets, func(t Target) bool { return t.FollowUp }) {
		return nil, nil
	}
	fu := &followUps{incident: req.Incident.ID, byRule: map[string]map[string]bool{}, orphaned: map[string][]store.Reached{},
		unseen: map[string]bool{}}
	carried := map[string]bool{}
	for _, t := range req.Targets {
		carried[t.Rule] = true
		if t.FollowUp && fu.byRule[t.Rule] == nil {
			fu.byRule[t.Rule] = map[string]bool{}
		}
	}
	err := tx.EachReached(req.Incident.ID, req.triggerID, func(r store.Reached) error {
		switch {
		case fu.byRule[r.Rule] != nil:
			fu.byRule[r.Rule][r.SubscriberID] = true
		case !carried[r.Rule]:
			fu.orphaned[r.SubscriberID] = append(fu.orphaned[r.SubscriberID], r)
		default:
			return nil // a target that does not follow up: nobody to add
		}
		fu.unseen[r.SubscriberID] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return fu, nil
}

// told reports whether t follows up and its rule reached subscriber id.
func (fu *followUps) told(t *Target, id string) bool {
	return fu != nil && t.FollowUp && fu.byRule[t.Rule][id]
}

// met records that the subscriber walk met id: still a subscriber.
func (fu *followUps) met(id string) {
	if fu != nil && len(fu.unseen) > 0 {
		delete(fu.unseen, id)
	}
}

// gone returns, once the subscriber walk is over, those reached before
// whom it did not meet: no longer subscribers, in id order.
func (fu *followUps) gone() []string {
	if fu == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(fu.unseen))
}

// note marks j as a follow-up, selected because the rule told its
// subscriber of the incident before, and says so in its detail.
func (fu *followUps) note(j *planJob) {
	j.followUp = true
	rule := j.nd.Rule
	why, ok := fu.whys[rule]
	if !ok {
		if fu.whys == nil {
			fu.whys, fu.heard = map[string]string{}, map[string]string{}
		}
		why = fmt.Sprintf("told of %s before by alert rule %s", fu.incident, rule)
		fu.whys[rule], fu.heard[rule] = why, why+", so hears its updates and its resolution"
	}
	switch {
	case j.nd.Status == store.StatusQueued && j.nd.Detail == "":
		j.nd.Detail = fu.heard[rule]
	case j.nd.Reason == ReasonRuleNotOnEvent:
		j.nd.Detail += "; it told them of " + fu.incident + " before"
	default:
		j.nd.Detail += " (" + why + ")"
	}
}

// orphans appends to jobs a suppressed row (reason rule_removed) for each
// channel a rule that is no longer in the config reached subscriber id on,
// unless a row for that channel is already planned (seen).
func (fu *followUps) orphans(id string, jobs []planJob, seen *[]string, inc *incidents.Incident, newJob func(t *Target, id, locale, address, ch string) planJob) []planJob {
	if fu == nil {
		return jobs
	}
	for _, r := range fu.orphaned[id] {
		if slices.Contains(*seen, r.Channel) {
			continue
		}
		*seen = append(*seen, r.Channel)
		j := newJob(&Target{Rule: r.Rule}, id, "", "", r.Channel)
		j.followUp = true
		j.nd.Kind = r.Kind // the channel may be gone from the config too
		j.nd.Status, j.nd.Reason = store.StatusSuppressed, ReasonRuleRemoved
		j.nd.Detail = fmt.Sprintf("alert rule %s, which told %s of %s before, is no longer in the config", r.Rule, id, inc.ID)
		jobs = append(jobs, j)
	}
	return jobs
}

// smsPointers chooses what ends an SMS cut to its channel's segment cap:
// a pointer to the email the recipient is sent in the same trigger, else
// a link to the incident's page, else only the ellipsis. It never names a
// channel the recipient is not being sent.
type smsPointers struct {
	link string // the incident page, shortened; "" when there is none
}

func newSMSPointers(req Request, base templates.Data) smsPointers {
	if req.Incident == nil || base.DashboardURL == "" {
		return smsPointers{}
	}
	// Phones link a bare host name; https:// costs eight characters of a
	// segment and says nothing to the reader. Plain http stays explicit.
	return smsPointers{link: strings.TrimSuffix(strings.TrimPrefix(base.DashboardURL, "https://"), "/")}
}

// set gives every SMS job of one subscriber that is rendered its pointer.
func (sp smsPointers) set(jobs []planJob) {
	email := slices.ContainsFunc(jobs, func(j planJob) bool {
		return j.nd.Kind == string(channels.KindEmail) && j.nd.Status == store.StatusQueued
	})
	for k := range jobs {
		j := &jobs[k]
		if j.nd.Kind != string(channels.KindSMS) || j.data == nil {
			continue
		}
		switch {
		case email:
			j.pointer = templates.SMSPointer(j.locale)
		case sp.link != "":
			j.pointer = templates.SMSLinkPointer(j.locale, sp.link)
		default:
			j.pointer = templates.SMSEllipsis
		}
	}
}
