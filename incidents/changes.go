package incidents

import "strings"

// ImpactChange is one service × nation cell that a timeline entry changed:
// its status before the entry and after it.
type ImpactChange struct {
	Service string
	Nation  string
	// From is the status before the entry; "" when the entry first lists
	// the cell (a newly affected service, or the opening).
	From ImpactStatus
	// To is the status the entry set.
	To ImpactStatus
	// Workaround is the workaround the entry left in force; may be empty.
	Workaround string
}

// Restored reports whether the change brought a disrupted service back:
// from degraded or outage to restored or operational.
func (c ImpactChange) Restored() bool {
	return (c.From == Degraded || c.From == Outage) && (c.To == Restored || c.To == Operational)
}

// Changes lists the cells the timeline entry seq changed, in the order the
// entry lists them (a cell listed twice counts once, as it ended), each
// with its status before the entry, taken from the entries before it. An
// entry that does not exist changed nothing.
func (i *Incident) Changes(seq int) []ImpactChange {
	type cell struct{ service, nation string }
	key := func(im Impact) cell { return cell{strings.ToLower(im.Service), im.Nation} }
	before := map[cell]ImpactStatus{}
	var entry *Update
	for k := range i.Timeline {
		u := &i.Timeline[k]
		if u.Seq == seq {
			entry = u
			break
		}
		for _, im := range u.Impacts {
			before[key(im)] = im.Status
		}
	}
	if entry == nil {
		return nil
	}
	var out []ImpactChange
	at := map[cell]int{}
	for _, im := range entry.Impacts {
		c := ImpactChange{Service: im.Service, Nation: im.Nation, From: before[key(im)], To: im.Status, Workaround: im.Workaround}
		if k, ok := at[key(im)]; ok {
			c.From = out[k].From
			out[k] = c
			continue
		}
		at[key(im)] = len(out)
		out = append(out, c)
	}
	return out
}
