package dispatch

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// escalate_people.go: who a policy asks and where each of them stands,
// and the message that tells the deputy audience who did not answer.

// askee is one recipient a policy asks, with their deliveries by rung.
type askee struct {
	id     string
	levels [][]store.AckDelivery // levels[0] the original deliveries, levels[k] the k-th rung
	all    map[string]bool       // channels they have a delivery on
}

// current is the person's latest rung.
func (r *askee) current() []store.AckDelivery { return r.levels[len(r.levels)-1] }

// latest is the delivery a next rung escalates: the newest of the current rung.
func (r *askee) latest() store.AckDelivery {
	cur := r.current()
	return cur[len(cur)-1]
}

// unreachable reports whether a delivery cannot reach its recipient.
func unreachable(d store.AckDelivery) bool {
	switch d.Status {
	case store.StatusFailed, store.StatusExpired:
		return true
	case store.StatusSuppressed:
		return d.Reason == "no_address" || d.Reason == "opted_out"
	}
	return false
}

// askees groups a trigger's deliveries by person and rung. People
// whose every original delivery was held back for another reason (folded
// into a briefing, capped) are not asked.
func askees(dels []store.AckDelivery) []*askee {
	byID := map[int64]int{} // delivery → level
	idx := map[string]*askee{}
	var out []*askee
	for _, d := range dels {
		level := 0
		if d.EscalatesID != 0 {
			l, ok := byID[d.EscalatesID]
			if !ok {
				continue // escalates something outside this trigger: not ours
			}
			level = l + 1
		}
		byID[d.ID] = level
		r := idx[d.SubscriberID]
		if r == nil {
			if level > 0 {
				continue
			}
			r = &askee{id: d.SubscriberID, all: map[string]bool{}}
			idx[d.SubscriberID] = r
			out = append(out, r)
		}
		for len(r.levels) <= level {
			r.levels = append(r.levels, nil)
		}
		r.levels[level] = append(r.levels[level], d)
		r.all[d.Channel] = true
	}
	kept := out[:0]
	for _, r := range out {
		asked := slices.ContainsFunc(r.levels[0], func(d store.AckDelivery) bool { return d.Status != store.StatusSuppressed || unreachable(d) })
		if asked {
			kept = append(kept, r)
		}
	}
	return kept
}

// why says whether the person's current rung calls for the next one
// now, and why ("" when not yet).
func (r *askee) why(pol store.AckPolicy, now time.Time) string {
	cur := r.current()
	if !slices.ContainsFunc(cur, func(d store.AckDelivery) bool { return !unreachable(d) }) {
		d := cur[len(cur)-1]
		switch {
		case d.Status == store.StatusSuppressed:
			return "not sent (" + d.Reason + ")"
		case d.ProviderStatus == "undelivered" || d.ProviderStatus == "failed":
			if d.ErrorCode != "" {
				return d.ProviderStatus + " (" + d.ErrorCode + ")"
			}
			return d.ProviderStatus
		case d.Status == store.StatusExpired:
			return "not delivered (" + orWord(d.Reason, "expired") + ")"
		}
		return "failed (" + orWord(d.Reason, "error") + ")"
	}
	due, waiting := r.dueAt(pol, len(r.levels)-1)
	if waiting || now.Before(due) {
		return ""
	}
	return "not acknowledged within " + shortDuration(pol.Within)
}

// dueAt is when the person's rung at level (0: the original deliveries)
// has gone unacknowledged too long: Within after it was first sent to
// them. waiting is true while nothing of the rung has been sent and some
// of it is held back on purpose (quiet hours): no deadline runs yet. A
// rung that is failing to go out (retries, a paused channel) or was never
// going to (capped into a digest, in doubt) counts from when it was
// planned, so a broken channel cannot stall the ladder.
func (r *askee) dueAt(pol store.AckPolicy, level int) (due time.Time, waiting bool) {
	cur := r.levels[level]
	var sent time.Time
	for _, d := range cur {
		switch {
		case unreachable(d):
		case !d.SentAt.IsZero():
			if sent.IsZero() || d.SentAt.Before(sent) {
				sent = d.SentAt
			}
		case d.Status == store.StatusQueued && d.Reason == "quiet_hours":
			// Held on purpose until the person's quiet hours end: their
			// time to answer starts when it is sent. A delivery that is
			// queued for any other reason (retries, a paused channel) is
			// failing to reach them, and the clock keeps running.
			waiting = true
		}
	}
	switch {
	case !sent.IsZero():
		return sent.Add(pol.Within), false
	case waiting:
		return time.Time{}, true
	case level > 0:
		return cur[len(cur)-1].CreatedAt.Add(pol.Within), false
	}
	return pol.DueAt, false
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// shortDuration writes 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// nextRung is the first ladder channel the person has an address for and
// no delivery on yet, or "".
func nextRung(ladder []string, r *askee, s subscribers.Subscriber, kinds map[string]channels.Kind) string {
	for _, ch := range ladder {
		if r.all[ch] {
			continue
		}
		if k, ok := kinds[ch]; ok && s.Address(k) != "" {
			return ch
		}
	}
	return ""
}

func ids(people []*askee) []string {
	out := make([]string, len(people))
	for i, r := range people {
		out[i] = r.id
	}
	return out
}

// sourceText is the subject and text of a delivery, to be sent again
// (a broadcast's rung, the deputy's message), without its own request to
// acknowledge. known is the subject the trigger was planned with (a
// broadcast's), if any: an SMS or Slack text that begins with it has it
// taken off. Without either, the first line is the subject.
func sourceText(tx *store.Tx, id int64, known string) (subject, body string, err error) {
	subject, text, err := tx.DeliveryMessage(id)
	if err != nil {
		return "", "", err
	}
	body = stripAckLines(text)
	if known != "" {
		subject = known
		for _, lead := range []string{known + ": ", "*" + known + "*\n"} {
			body = strings.TrimPrefix(body, lead)
		}
	}
	if subject == "" {
		subject, _, _ = strings.Cut(body, "\n")
	}
	return subject, body, nil
}

// tellDeputy plans the message to the deputy audience (once per policy:
// its trigger key is derived from the policy's) naming everyone who has
// not acknowledged, on every channel of the policy, linked to the
// delivery whose used-up ladder set it off; each person named gets an
// event on their latest delivery. It returns the deputy trigger's id.
func (e *Escalator) tellDeputy(tx *store.Tx, pol store.AckPolicy, inc *incidents.Incident, dels []store.AckDelivery, people []*askee,
	acks map[string]store.Ack, exhausted []*askee) (int64, error) {
	var missing []*askee
	for _, r := range people {
		if _, ok := acks[r.id]; !ok {
			missing = append(missing, r)
		}
	}
	subs, err := tx.SubscribersByID(ids(missing))
	if err != nil {
		return 0, err
	}
	var names []string
	for i, r := range missing {
		if i == 50 {
			names = append(names, fmt.Sprintf("and %d more", len(missing)-50))
			break
		}
		name := subs[r.id].Name
		if name == "" {
			name = r.id
		}
		names = append(names, fmt.Sprintf("%s (%s)", name, r.id))
	}
	cause := exhausted[0].latest()
	subject, text := sendSubject(pol), ""
	if src, ok := e.quotable(exhausted[0], dels); ok {
		if subject, text, err = sourceText(tx, src.ID, subject); err != nil {
			return 0, err
		}
	}
	label := orWord(subject, pol.TriggerKey)
	if inc != nil {
		label = inc.ID + ": " + inc.Title
	}
	// The deadline named is the first that ran out: the policy's own
	// unless every original message was sent later (held by quiet hours).
	var due time.Time
	for _, r := range missing {
		if d, waiting := r.dueAt(pol, 0); !waiting && (due.IsZero() || d.Before(due)) {
			due = d
		}
	}
	if due.IsZero() {
		due = pol.DueAt
	}
	quorum := "everyone"
	if pol.Quorum > 0 {
		quorum = fmt.Sprint(pol.Quorum)
	}
	var body strings.Builder
	fmt.Fprintf(&body, "Not acknowledged by: %s.\n", strings.Join(names, ", "))
	fmt.Fprintf(&body, "%d of %d recipients have acknowledged (needed: %s). Acknowledgement was due by %s.\n",
		len(people)-len(missing), len(people), quorum, due.UTC().Format("15:04 MST on 2 Jan"))
	if pol.IncidentID != "" {
		fmt.Fprintf(&body, "Follow it with: crier acks --incident %s\n", pol.IncidentID)
	}
	if text != "" {
		fmt.Fprintf(&body, "\nThe message they were sent:\n%s", text)
	} else {
		fmt.Fprintf(&body, "\nThe message they were sent is not repeated here: see the delivery log (crier log --trigger %s).\n", pol.TriggerKey)
	}
	var chans []string
	for _, d := range dels {
		if d.EscalatesID == 0 && !slices.Contains(chans, d.Channel) {
			chans = append(chans, d.Channel)
		}
	}
	for _, ch := range pol.Ladder {
		if !slices.Contains(chans, ch) {
			chans = append(chans, ch)
		}
	}
	critical := slices.ContainsFunc(dels, func(d store.AckDelivery) bool { return d.Priority >= 2 })
	req := Request{Key: store.DeputyKey(pol.TriggerKey), Kind: "escalation", Name: "not-acknowledged", Incident: inc, Critical: critical,
		Subject: "Not acknowledged: " + label, Body: body.String(), EscalatesID: cause.ID,
		Targets: []Target{{Audience: pol.Deputy, Channels: chans, Event: templates.EventMessage}}}
	out, err := e.p.PlanTx(tx, req)
	if err != nil {
		return 0, err
	}
	detail := fmt.Sprintf("deputy audience %s told (trigger %s): not acknowledged", pol.Deputy, req.Key)
	for _, r := range missing {
		if err := tx.AddEvent(r.latest().ID, "escalated", "deputy", detail); err != nil {
			return 0, err
		}
	}
	e.log.Warn("acknowledgement escalated to the deputy audience", "trigger", pol.TriggerKey, "deputy", pol.Deputy,
		"not_acknowledged", len(missing), "deliveries", out.Queued)
	return out.TriggerID, nil
}

// quotable is the delivery whose text the deputy's message passes on. It
// goes to the deputies over every channel of the policy, SMS and Slack
// too, so only a delivery on a channel cleared for no more than OFFICIAL
// will do: its text had anything more sensitive withheld already (an
// email cleared for OFFICIAL-SENSITIVE may carry it in full). The
// person's own deliveries come first, original before rung, then anyone's
// of the trigger; within each, the shortest kind first (an email's would
// repeat what the deputy's own message says). ok is false when there is
// no such delivery.
func (e *Escalator) quotable(r *askee, dels []store.AckDelivery) (src store.AckDelivery, ok bool) {
	var own []store.AckDelivery
	for _, l := range r.levels {
		own = append(own, l...)
	}
	for _, list := range [][]store.AckDelivery{own, dels} {
		found := false
		for _, d := range list {
			cleared := e.p.channels[d.Channel].MaxMarking
			if d.Status == store.StatusSuppressed || cleared.Rank() > incidents.Official.Rank() {
				continue // never rendered, or may carry sensitive text
			}
			if d.Kind != string(channels.KindEmail) {
				return d, true
			}
			if !found {
				src, found = d, true
			}
		}
		if found {
			return src, true
		}
	}
	return store.AckDelivery{}, false
}

// sendSubject is the subject a broadcast was planned with ("" for other
// triggers): crier send and the broadcast API name a broadcast's trigger
// after its subject, and only they ask a broadcast for acknowledgement.
func sendSubject(pol store.AckPolicy) string {
	if pol.TriggerKind == "send" {
		return pol.TriggerName
	}
	return ""
}
