package subscribers

import (
	"strings"

	"github.com/crier-dev/crier/internal/fields"
)

// Selector picks subscribers by attributes. Within one field any value
// matches; fields combine with AND; an empty field matches everyone. Values
// compare case-insensitively after the same canonicalisation as Subscriber.
type Selector struct {
	// IDs picks named subscribers.
	IDs []string `yaml:"ids" json:"ids,omitempty"`
	// Roles picks subscribers holding any of these roles.
	Roles []string `yaml:"roles" json:"roles,omitempty"`
	// Nations picks subscribers covering any of these nations.
	Nations []string `yaml:"nations" json:"nations,omitempty"`
	// Tags picks subscribers carrying any of these tags.
	Tags []string `yaml:"tags" json:"tags,omitempty"`
	// IncidentNations also requires one of the subscriber's nations to be
	// among those the incident affects, so a Welsh clinician is not paged
	// about an outage in Scotland.
	IncidentNations bool `yaml:"incident_nations" json:"incident_nations,omitempty"`
}

// Normalize canonicalises sel in place the way Subscriber.Normalize does and
// reports every value that can never match (a malformed id, an unknown
// nation) under its YAML key.
func (sel *Selector) Normalize() fields.List {
	var errs fields.List
	var ids []string
	for _, raw := range sel.IDs {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		if id, ok := normalizeID(&errs, "ids", raw); ok {
			ids = appendUnique(ids, id)
		}
	}
	if len(errs) == 0 {
		sel.IDs = ids // otherwise keep the input so the caller can show it
	}
	sel.Roles = normalizeWords(&errs, "roles", sel.Roles)
	sel.Tags = normalizeWords(&errs, "tags", sel.Tags)
	sel.Nations = normalizeNations(&errs, "nations", sel.Nations)
	return errs
}

// Match reports whether s is in sel's audience for an incident affecting
// incidentNations (canonical nation names; ignored unless
// sel.IncidentNations). With IncidentNations set, a subscriber without
// nations, or an incident without nations, never matches: nobody is told
// about an incident that touches none of their nations. Both sides are
// compared in canonical form, so Match gives the same answer whether or not
// Normalize ran.
func (sel Selector) Match(s *Subscriber, incidentNations []string) bool {
	if s == nil {
		return false
	}
	if !fieldMatches(sel.IDs, []string{s.ID}, canonicalWord) ||
		!fieldMatches(sel.Roles, s.Roles, canonicalWord) ||
		!fieldMatches(sel.Tags, s.Tags, canonicalWord) ||
		!fieldMatches(sel.Nations, s.Nations, canonicalNationOrWord) {
		return false
	}
	if sel.IncidentNations {
		matched, _ := anyEqual(incidentNations, s.Nations, canonicalNationOrWord)
		if !matched {
			return false
		}
	}
	return true
}

func canonicalWord(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// canonicalNationOrWord canonicalises a nation, falling back to the
// lower-cased word so an unknown value still only equals itself.
func canonicalNationOrWord(s string) string {
	if n, ok := CanonicalNation(s); ok {
		return n
	}
	return canonicalWord(s)
}

// fieldMatches applies one selector field: a field with no non-empty
// values matches everyone, otherwise some value must be in have.
func fieldMatches(want, have []string, canon func(string) string) bool {
	matched, constrained := anyEqual(want, have, canon)
	return matched || !constrained
}

// anyEqual reports whether some non-empty value of want equals some value
// of have after canon, and whether want held any non-empty value at all.
// Lists are short (a handful of roles or nations), so the nested loop beats
// building a set.
func anyEqual(want, have []string, canon func(string) string) (matched, constrained bool) {
	for _, w := range want {
		cw := canon(w)
		if cw == "" {
			continue
		}
		constrained = true
		for _, h := range have {
			if canon(h) == cw {
				return true, true
			}
		}
	}
	return false, constrained
}
