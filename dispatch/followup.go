package dispatch

import (
	"fmt"
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
	// ids lists every subscriber in byRule or orphaned, in id order; next
	// is the first the subscriber walk has not passed yet.
	ids  []string
	next int
	// whys and heard are note's words per rule, made once: most
	// follow-ups of a rule share one detail.
	whys, heard map[string]string
}

// loadFollowUps reads who the incident's earlier deliveries reached, when
// a target of req follows the incident up; otherwise it returns nil (no
// follow-ups, at no cost). Subscribers up to after (a plan resumed past
// them) are left out of those found gone.
func (p *Planner) loadFollowUps(tx *store.Tx, req Request, after string) (*followUps, error) {
	if req.Incident == nil || !slices.ContainsFunc(req.Targets, func(t Target) bool { return t.FollowUp }) {
		return nil, nil
	}
	fu := &followUps{incident: req.Incident.ID, byRule: map[string]map[string]bool{}, orphaned: map[string][]store.Reached{}}
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
		// Rows come in subscriber order.
		if n := len(fu.ids); r.SubscriberID > after && (n == 0 || fu.ids[n-1] != r.SubscriberID) {
			fu.ids = append(fu.ids, r.SubscriberID)
		}
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

// goneBefore returns the subscribers reached before who sort before id
// and were not passed yet: the subscriber walk, in the same order, did not
// find them, so they are no longer subscribers. id "" returns all the
// rest (the walk is over).
func (fu *followUps) goneBefore(id string) []string {
	if fu == nil {
		return nil
	}
	start := fu.next
	for fu.next < len(fu.ids) && (id == "" || fu.ids[fu.next] < id) {
		fu.next++
	}
	gone := fu.ids[start:fu.next]
	if id != "" && fu.next < len(fu.ids) && fu.ids[fu.next] == id {
		fu.next++ // still a subscriber
	}
	return gone
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
