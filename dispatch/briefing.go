package dispatch

import (
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/templates"
)

// briefingView is what one recipient's briefing covers, given when they
// last received that briefing (zero: never, so the full picture).
//
// Active incidents are all listed with their whole impact matrix; what
// changed is what happened after since: timeline entries, impact cells
// that moved (with their state before), incidents opened since (New) and
// incidents resolved since (Resolved). For a first briefing every entry
// counts as a change and incidents resolved in the last day are listed.
func briefingView(list []*incidents.Incident, since, now time.Time) (active, resolved []templates.Incident) {
	for _, inc := range list {
		d := incidentData(inc)
		d.New = !since.IsZero() && inc.OpenedAt.After(since)
		d.Changes, d.ImpactChanges = changesSince(inc, since)
		switch {
		case inc.Active():
			active = append(active, d)
		case !since.IsZero() && inc.ResolvedAt.After(since):
			resolved = append(resolved, d)
		case since.IsZero() && now.Sub(inc.ResolvedAt) < 24*time.Hour:
			resolved = append(resolved, d)
		}
	}
	return active, resolved
}

// changesSince lists the timeline entries after since and the impact
// cells they changed, each with its state just before the first change.
func changesSince(inc *incidents.Incident, since time.Time) ([]templates.Entry, []templates.ImpactChange) {
	type cell struct{ service, nation string }
	state := map[cell]incidents.Impact{}
	var entries []templates.Entry
	var changes []templates.ImpactChange
	index := map[cell]int{}
	for _, u := range inc.Timeline {
		after := since.IsZero() || u.At.After(since)
		if after {
			entries = append(entries, entryData(u))
		}
		for _, im := range u.Impacts {
			k := cell{im.Service, im.Nation}
			before, had := state[k]
			state[k] = im
			if !after || (had && before.Status == im.Status && before.Workaround == im.Workaround) {
				continue
			}
			from := ""
			if had {
				from = string(before.Status)
			}
			if i, ok := index[k]; ok {
				changes[i].To, changes[i].Workaround = string(im.Status), im.Workaround
				continue
			}
			index[k] = len(changes)
			changes = append(changes, templates.ImpactChange{Service: im.Service, Nation: im.Nation, From: from, To: string(im.Status), Workaround: im.Workaround})
		}
	}
	// A cell that moved and came back is no change.
	out := changes[:0]
	for _, c := range changes {
		if c.From != c.To {
			out = append(out, c)
		}
	}
	return entries, out
}

func entryData(u incidents.Update) templates.Entry {
	return templates.Entry{At: u.At, Status: string(u.Status), Text: u.Text, Marking: string(u.Marking)}
}
