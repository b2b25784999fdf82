package dispatch

import (
	"slices"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/templates"
)

// withhold returns a copy of d fit for a channel cleared only for
// OFFICIAL: every OFFICIAL-SENSITIVE text (an incident's summary when the
// incident is so marked, timeline entries so marked) is replaced by the
// notice that says where the full briefing went. Titles and the impact
// matrix are OFFICIAL by rule and stay.
func withhold(d templates.Data, locale string) templates.Data {
	notice := templates.WithheldNotice(locale)
	d.Withheld = true
	if d.Marking == string(incidents.OfficialSensitive) {
		d.Summary = notice
	}
	d.Timeline = withholdEntries(d.Timeline, notice)
	if n := len(d.Timeline); n > 0 && d.UpdateText != "" {
		d.UpdateText = d.Timeline[n-1].Text
	}
	d.Incidents = withholdIncidents(d.Incidents, notice)
	d.Resolved = withholdIncidents(d.Resolved, notice)
	d.Marking = string(incidents.Official)
	return d
}

func withholdIncidents(list []templates.Incident, notice string) []templates.Incident {
	if len(list) == 0 {
		return list
	}
	out := make([]templates.Incident, len(list))
	for i, inc := range list {
		if inc.Marking == string(incidents.OfficialSensitive) {
			inc.Summary = notice
		}
		inc.Timeline = withholdEntries(inc.Timeline, notice)
		inc.Changes = withholdEntries(inc.Changes, notice)
		if n := len(inc.Timeline); n > 0 {
			inc.UpdateText = inc.Timeline[n-1].Text
		}
		inc.Marking = string(incidents.Official)
		out[i] = inc
	}
	return out
}

func withholdEntries(list []templates.Entry, notice string) []templates.Entry {
	if len(list) == 0 {
		return list
	}
	out := make([]templates.Entry, len(list))
	for i, e := range list {
		if e.Marking == string(incidents.OfficialSensitive) {
			e.Text = notice
			e.Marking = string(incidents.Official)
		}
		out[i] = e
	}
	return out
}

// highestMarking is the marking a message carrying d needs.
func highestMarking(d *templates.Data) string {
	m := incidents.Official
	raise := func(s string) {
		if incidents.Marking(s).Rank() > m.Rank() {
			m = incidents.Marking(s)
		}
	}
	raise(d.Marking)
	for _, e := range d.Timeline {
		raise(e.Marking)
	}
	for _, inc := range append(slices.Clip(d.Incidents), d.Resolved...) {
		raise(inc.Marking)
		for _, e := range inc.Timeline {
			raise(e.Marking)
		}
		for _, e := range inc.Changes {
			raise(e.Marking)
		}
	}
	return string(m)
}
