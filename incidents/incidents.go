// Package incidents holds the incident domain: severity, status, the
// service × nation impact matrix and the timeline of updates. It does no
// I/O; the store persists these values and dispatch turns them into
// messages.
package incidents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/subscribers"
)

// Severity says how bad an incident is.
type Severity string

// The severities, most severe first.
const (
	Critical Severity = "critical"
	Major    Severity = "major"
	Minor    Severity = "minor"
)

// Severities lists every severity, most severe first.
var Severities = []Severity{Critical, Major, Minor}

// Rank orders severities: critical 3, major 2, minor 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 3
	case Major:
		return 2
	case Minor:
		return 1
	}
	return 0
}

// AtLeast reports whether s is at least as severe as min; an empty min
// admits everything.
func (s Severity) AtLeast(min Severity) bool { return min == "" || s.Rank() >= min.Rank() }

// ParseSeverity accepts critical, major or minor in any case.
func ParseSeverity(v string) (Severity, error) {
	s := Severity(strings.ToLower(strings.TrimSpace(v)))
	if s.Rank() == 0 {
		return "", fmt.Errorf("severity %q is not one of critical, major, minor", v)
	}
	return s, nil
}

// Status is where the response to an incident stands.
type Status string

// The statuses, in the order an incident usually moves through them.
const (
	Investigating Status = "investigating"
	Identified    Status = "identified"
	Monitoring    Status = "monitoring"
	Resolved      Status = "resolved"
)

// ParseStatus accepts investigating, identified, monitoring or resolved.
func ParseStatus(v string) (Status, error) {
	s := Status(strings.ToLower(strings.TrimSpace(v)))
	switch s {
	case Investigating, Identified, Monitoring, Resolved:
		return s, nil
	}
	return "", fmt.Errorf("status %q is not one of investigating, identified, monitoring, resolved", v)
}

// ImpactStatus is the state of one service in one nation.
type ImpactStatus string

// The impact states.
const (
	Operational ImpactStatus = "operational"
	Degraded    ImpactStatus = "degraded"
	Outage      ImpactStatus = "outage"
	Restored    ImpactStatus = "restored"
)

// ParseImpactStatus accepts operational, degraded, outage or restored.
func ParseImpactStatus(v string) (ImpactStatus, error) {
	s := ImpactStatus(strings.ToLower(strings.TrimSpace(v)))
	switch s {
	case Operational, Degraded, Outage, Restored:
		return s, nil
	}
	return "", fmt.Errorf("impact status %q is not one of operational, degraded, outage, restored", v)
}

// Marking is a protective marking under the Government Security
// Classifications Policy.
type Marking string

// The markings crier handles, lowest first.
const (
	Official          Marking = "OFFICIAL"
	OfficialSensitive Marking = "OFFICIAL-SENSITIVE"
)

// Rank orders markings: OFFICIAL 1, OFFICIAL-SENSITIVE 2, anything else 0.
func (m Marking) Rank() int {
	switch m {
	case Official, "":
		return 1
	case OfficialSensitive:
		return 2
	}
	return 0
}

// ParseMarking accepts OFFICIAL or OFFICIAL-SENSITIVE in any case (also
// "official sensitive").
func ParseMarking(v string) (Marking, error) {
	m := Marking(strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(v), " ", "-")))
	if m == "" {
		return Official, nil
	}
	if m.Rank() == 0 {
		return "", fmt.Errorf("marking %q is not OFFICIAL or OFFICIAL-SENSITIVE", v)
	}
	return m, nil
}

// Impact is the state of one service in one nation, with the workaround
// people should use meanwhile.
type Impact struct {
	Service    string       `json:"service"`
	Nation     string       `json:"nation"`
	Status     ImpactStatus `json:"status"`
	Workaround string       `json:"workaround,omitempty"`
}

// ParseImpact reads the CLI form "service@nation=status[:workaround]",
// for example "referrals@wales=outage:phone the duty clinician".
func ParseImpact(v string) (Impact, error) {
	svcNation, rest, ok := strings.Cut(v, "=")
	if !ok {
		return Impact{}, fmt.Errorf("impact %q: want service@nation=status[:workaround], for example referrals@wales=outage:use paper forms", v)
	}
	svc, nation, ok := strings.Cut(svcNation, "@")
	if !ok {
		return Impact{}, fmt.Errorf("impact %q: missing @nation, for example referrals@wales=outage", v)
	}
	status, workaround, _ := strings.Cut(rest, ":")
	im := Impact{Service: strings.TrimSpace(svc), Nation: strings.TrimSpace(nation), Workaround: strings.TrimSpace(workaround)}
	st, err := ParseImpactStatus(status)
	if err != nil {
		return Impact{}, fmt.Errorf("impact %q: %w", v, err)
	}
	im.Status = st
	if err := im.normalize(); err != nil {
		return Impact{}, fmt.Errorf("impact %q: %w", v, err)
	}
	return im, nil
}

func (im *Impact) normalize() error {
	im.Service = strings.Join(strings.Fields(im.Service), " ")
	if im.Service == "" {
		return fmt.Errorf("service is empty")
	}
	n, ok := subscribers.CanonicalNation(im.Nation)
	if !ok {
		return fmt.Errorf("nation %q is not one of england, scotland, wales, northern-ireland", im.Nation)
	}
	im.Nation = n
	return nil
}

// Update is one entry of an incident's timeline.
type Update struct {
	Seq      int       `json:"seq"`
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"` // open, update, resolve
	Status   Status    `json:"status"`
	Severity Severity  `json:"severity"`
	Text     string    `json:"text"`
	Impacts  []Impact  `json:"impacts,omitempty"` // impacts changed by this update
	// Marking is the entry's text's marking: OFFICIAL-SENSITIVE text is
	// withheld from channels cleared only for OFFICIAL.
	Marking Marking `json:"marking,omitempty"`
}

// Incident is one incident with its current state and timeline.
type Incident struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Status   Status   `json:"status"`
	Summary  string   `json:"summary"`
	Impacts  []Impact `json:"impacts"`
	// Marking is the incident's protective marking; it covers the summary.
	// Titles and the impact matrix must be written to be shareable at
	// OFFICIAL: they go to every channel.
	Marking Marking `json:"marking"`
	// NextUpdateAt is when the next update is promised (zero: not set).
	NextUpdateAt time.Time `json:"next_update_at,omitzero"`
	OpenedAt     time.Time `json:"opened_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	ResolvedAt   time.Time `json:"resolved_at,omitzero"`
	Timeline     []Update  `json:"timeline,omitempty"`
}

// Active reports whether the incident is not resolved.
func (i *Incident) Active() bool { return i.Status != Resolved }

// Nations lists the nations with an impact that is not operational or
// restored, sorted; these are the nations the incident affects now.
func (i *Incident) Nations() []string {
	var out []string
	for _, im := range i.Impacts {
		if im.Status == Operational || im.Status == Restored {
			continue
		}
		if !slices.Contains(out, im.Nation) {
			out = append(out, im.Nation)
		}
	}
	slices.Sort(out)
	return out
}

// SetImpact replaces the impact for the same service and nation, or adds it.
func (i *Incident) SetImpact(im Impact) {
	for k := range i.Impacts {
		if strings.EqualFold(i.Impacts[k].Service, im.Service) && i.Impacts[k].Nation == im.Nation {
			i.Impacts[k] = im
			return
		}
	}
	i.Impacts = append(i.Impacts, im)
}

// Change is what an operator asks of an incident: open it, update it or
// resolve it. Empty fields leave the current value.
type Change struct {
	Title    string   `json:"title,omitempty"`
	Severity string   `json:"severity,omitempty"`
	Status   string   `json:"status,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Text     string   `json:"text,omitempty"` // the timeline entry
	Impacts  []Impact `json:"impacts,omitempty"`
	// Marking sets the incident's protective marking.
	Marking string `json:"marking,omitempty"`
	// TextMarking marks this timeline entry (default: the incident's marking).
	TextMarking string `json:"text_marking,omitempty"`
	// NextUpdateAt promises the next update by then.
	NextUpdateAt time.Time `json:"next_update_at,omitzero"`
}

// Open builds a new incident from c; every problem is reported at once
// with the field it concerns.
func Open(c Change, now time.Time) (*Incident, error) {
	var errs fields.List
	inc := &Incident{Title: strings.TrimSpace(c.Title), Summary: strings.TrimSpace(c.Summary), Status: Investigating, OpenedAt: now, UpdatedAt: now}
	if inc.Title == "" {
		errs.Add("title", "", "is required: say in a few words what is wrong")
	} else if len(inc.Title) > 200 {
		errs.Add("title", inc.Title[:40]+"…", "is longer than 200 characters: shorten it and put the detail in summary")
	}
	if c.Severity == "" {
		errs.Add("severity", "", "is required: critical, major or minor")
	} else if s, err := ParseSeverity(c.Severity); err != nil {
		errs.Add("severity", c.Severity, "must be critical, major or minor")
	} else {
		inc.Severity = s
	}
	if c.Status != "" {
		if s, err := ParseStatus(c.Status); err != nil {
			errs.Add("status", c.Status, "must be investigating, identified, monitoring or resolved")
		} else if s == Resolved {
			errs.Add("status", c.Status, "a new incident cannot start resolved")
		} else {
			inc.Status = s
		}
	}
	errs = append(errs, applyImpacts(inc, c.Impacts)...)
	inc.Marking = Official
	textMarking := applyMarkings(inc, c, now, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	text := strings.TrimSpace(c.Text)
	if text == "" {
		text = inc.Summary
	}
	if text == "" {
		text = inc.Title
	}
	inc.Timeline = []Update{{Seq: 1, At: now, Kind: "open", Status: inc.Status, Severity: inc.Severity, Text: text, Impacts: inc.Impacts, Marking: textMarking}}
	return inc, nil
}

// Apply updates inc with c and appends a timeline entry. kind is "update"
// or "resolve"; resolve sets the status to resolved and marks every
// impact that is still degraded or out as restored.
func (i *Incident) Apply(kind string, c Change, now time.Time) (Update, error) {
	var errs fields.List
	if !i.Active() {
		errs.Add("status", string(i.Status), "incident %s is already resolved: open a new incident", i.ID)
		return Update{}, errs.Err()
	}
	next := *i
	next.Impacts = slices.Clone(i.Impacts)
	if t := strings.TrimSpace(c.Title); t != "" {
		next.Title = t
	}
	if s := strings.TrimSpace(c.Summary); s != "" {
		next.Summary = s
	}
	if c.Severity != "" {
		if s, err := ParseSeverity(c.Severity); err != nil {
			errs.Add("severity", c.Severity, "must be critical, major or minor")
		} else {
			next.Severity = s
		}
	}
	if c.Status != "" {
		if s, err := ParseStatus(c.Status); err != nil {
			errs.Add("status", c.Status, "must be investigating, identified, monitoring or resolved")
		} else if s == Resolved && kind != "resolve" {
			errs.Add("status", c.Status, "use resolve to resolve an incident")
		} else {
			next.Status = s
		}
	}
	textMarking := applyMarkings(&next, c, now, &errs)
	changed := slices.Clone(c.Impacts)
	errs = append(errs, applyImpacts(&next, changed)...)
	text := strings.TrimSpace(c.Text)
	if kind == "resolve" {
		next.Status = Resolved
		next.ResolvedAt = now
		for k := range next.Impacts {
			if st := next.Impacts[k].Status; st == Degraded || st == Outage {
				next.Impacts[k].Status = Restored
				changed = append(changed, next.Impacts[k])
			}
		}
		next.NextUpdateAt = time.Time{}
		if text == "" {
			text = "Resolved."
		}
	} else if text == "" && len(c.Impacts) == 0 && c.Severity == "" && c.Status == "" && c.Summary == "" && c.Title == "" && c.Marking == "" && c.NextUpdateAt.IsZero() {
		errs.Add("text", "", "an update needs at least a text, a status, a severity or an impact change")
	}
	if err := errs.Err(); err != nil {
		return Update{}, err
	}
	if text == "" {
		text = describe(i, &next)
	}
	next.UpdatedAt = now
	u := Update{Seq: len(i.Timeline) + 1, At: now, Kind: kind, Status: next.Status, Severity: next.Severity, Text: text, Impacts: changed, Marking: textMarking}
	next.Timeline = append(slices.Clone(i.Timeline), u)
	*i = next
	return u, nil
}

// applyMarkings sets the incident's marking and next-update promise from
// c, and returns the marking of the timeline entry c makes (the
// incident's unless c marks the text itself); problems go to errs.
func applyMarkings(inc *Incident, c Change, now time.Time, errs *fields.List) Marking {
	if c.Marking != "" {
		if m, err := ParseMarking(c.Marking); err != nil {
			errs.Add("marking", c.Marking, "must be OFFICIAL or OFFICIAL-SENSITIVE")
		} else {
			inc.Marking = m
		}
	}
	text := inc.Marking
	if c.TextMarking != "" {
		if m, err := ParseMarking(c.TextMarking); err != nil {
			errs.Add("text_marking", c.TextMarking, "must be OFFICIAL or OFFICIAL-SENSITIVE")
		} else {
			text = m
		}
	}
	if !c.NextUpdateAt.IsZero() {
		if !c.NextUpdateAt.After(now) {
			errs.Add("next_update_at", c.NextUpdateAt.Format(time.RFC3339), "is in the past: promise a time after now")
		}
		inc.NextUpdateAt = c.NextUpdateAt.UTC()
	}
	return text
}

func applyImpacts(inc *Incident, ims []Impact) fields.List {
	var errs fields.List
	for k := range ims {
		path := fmt.Sprintf("impacts[%d]", k)
		if ims[k].Status == "" {
			errs.Add(path+".status", "", "is required: operational, degraded, outage or restored")
			continue
		}
		if _, err := ParseImpactStatus(string(ims[k].Status)); err != nil {
			errs.Add(path+".status", string(ims[k].Status), "must be operational, degraded, outage or restored")
			continue
		}
		ims[k].Status = ImpactStatus(strings.ToLower(string(ims[k].Status)))
		ims[k].Workaround = strings.TrimSpace(ims[k].Workaround)
		if err := ims[k].normalize(); err != nil {
			errs.Add(path, ims[k].Service+"@"+ims[k].Nation, "%v", err)
			continue
		}
		inc.SetImpact(ims[k])
	}
	return errs
}

// describe writes a timeline text for an update that came without one.
func describe(prev, next *Incident) string {
	var parts []string
	if prev.Status != next.Status {
		parts = append(parts, "Status "+string(next.Status)+".")
	}
	if prev.Severity != next.Severity {
		parts = append(parts, "Severity "+string(next.Severity)+".")
	}
	if prev.Marking != next.Marking {
		parts = append(parts, "Marking "+string(next.Marking)+".")
	}
	if !prev.NextUpdateAt.Equal(next.NextUpdateAt) && !next.NextUpdateAt.IsZero() {
		parts = append(parts, "Next update by "+next.NextUpdateAt.UTC().Format("15:04 MST")+".")
	}
	if len(parts) == 0 {
		parts = append(parts, "Impact updated.")
	}
	return strings.Join(parts, " ")
}
