package templates

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

// words holds what a locale's templates need from Go: day and month names
// and the display words for the fixed vocabularies in Data. Template text
// itself is written per locale; only values that come from data are
// translated here.
type words struct {
	days        [7]string  // Sunday first, as time.Weekday counts
	months      [12]string // January first
	nations     map[string]string
	severity    map[string]string
	status      map[string]string // incident statuses and impact statuses
	marking     map[string]string // protective markings as printed in banners
	withheld    string            // WithheldNotice
	pointer     string            // SMSPointer
	linkPointer string            // SMSLinkPointer, before the link
}

// localeWords returns the vocabulary of a supported locale, or nil. A new
// locale is added here and under defaults/.
func localeWords(locale string) *words {
	switch locale {
	case "en":
		return &words{
			days:   [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
			months: [12]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
			nations: map[string]string{
				"england": "England", "wales": "Wales", "scotland": "Scotland", "northern-ireland": "Northern Ireland",
			},
			severity: map[string]string{"critical": "Critical", "major": "Major", "minor": "Minor"},
			status: map[string]string{
				"investigating": "Investigating", "identified": "Cause identified", "monitoring": "Monitoring", "resolved": "Resolved",
				"operational": "Operational", "degraded": "Degraded", "outage": "Outage", "restored": "Restored",
			},
			marking:     map[string]string{"OFFICIAL": "OFFICIAL", "OFFICIAL-SENSITIVE": "OFFICIAL-SENSITIVE"},
			withheld:    "Sensitive details have been withheld from this channel. A full briefing has been sent by email.",
			pointer:     " … full details by email",
			linkPointer: " … more: ",
		}
	case "cy":
		return &words{
			days:   [7]string{"Dydd Sul", "Dydd Llun", "Dydd Mawrth", "Dydd Mercher", "Dydd Iau", "Dydd Gwener", "Dydd Sadwrn"},
			months: [12]string{"Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf", "Awst", "Medi", "Hydref", "Tachwedd", "Rhagfyr"},
			nations: map[string]string{
				"england": "Lloegr", "wales": "Cymru", "scotland": "Yr Alban", "northern-ireland": "Gogledd Iwerddon",
			},
			severity: map[string]string{"critical": "Critigol", "major": "Difrifol", "minor": "Mân"},
			status: map[string]string{
				"investigating": "Yn ymchwilio", "identified": "Achos wedi'i ganfod", "monitoring": "Yn monitro", "resolved": "Wedi'i ddatrys",
				"operational": "Yn gweithio", "degraded": "Amhariad", "outage": "Ddim ar gael", "restored": "Adferwyd",
			},
			// The policy's own English term stays alongside the Welsh one:
			// mail gateways and readers outside Wales look for it.
			marking: map[string]string{
				"OFFICIAL":           "SWYDDOGOL / OFFICIAL",
				"OFFICIAL-SENSITIVE": "SWYDDOGOL-SENSITIF / OFFICIAL-SENSITIVE",
			},
			withheld:    "Mae manylion sensitif wedi'u hatal o'r sianel hon. Mae briff llawn wedi'i anfon drwy e-bost.",
			pointer:     " … manylion llawn drwy e-bost",
			linkPointer: " … mwy: ",
		}
	}
	return nil
}

// Locales lists the locales crier has default templates and vocabulary
// for, in a stable order.
func Locales() []string { return []string{"en", "cy"} }

// FormatTime formats t, in its own location, the way the locale's
// templates print a date and time: "Tuesday 16 June 2026, 08:00 BST" or
// "Dydd Mawrth 16 Mehefin 2026, 08:00 BST". Day and month names are
// written out in full in both languages because the usual Welsh
// abbreviations are ambiguous (Maw is both Tuesday and March). Unknown
// locales are formatted in English; the zero time formats as "".
func FormatTime(t time.Time, locale string) string {
	w := localeWords(locale)
	if w == nil {
		w = localeWords("en")
	}
	return w.format(t)
}

// format writes t with this locale's day and month names.
func (w *words) format(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s %d %s %d, %s", w.days[t.Weekday()], t.Day(), w.months[t.Month()-1], t.Year(), t.Format("15:04 MST"))
}

// nationOrder is the order nations are listed in: the usual order of
// UK government publications.
func nationOrder() []string { return []string{"england", "scotland", "wales", "northern-ireland"} }

// NationImpacts is one nation's share of an incident's impacts, as the
// byNation template function returns them.
type NationImpacts struct {
	Nation  string // canonical nation id ("wales")
	Impacts []Impact
}

// funcMap returns the template functions (listed in the package
// documentation), bound to one locale's words.
func funcMap(w *words) template.FuncMap {
	lookup := func(m map[string]string) func(string) string {
		return func(s string) string {
			if v, ok := m[s]; ok {
				return v
			}
			return s
		}
	}
	markingWord := lookup(w.marking)
	return template.FuncMap{
		"localtime": w.format,
		"clock": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format("15:04")
		},
		"upper":     strings.ToUpper,
		"join":      func(sep string, items []string) string { return strings.Join(items, sep) },
		"nation":    lookup(w.nations),
		"severity":  lookup(w.severity),
		"status":    lookup(w.status),
		"impactsIn": impactsIn,
		"byNation":  byNation,
		"latest": func(n int, entries []Entry) []Entry {
			if n < 0 || n >= len(entries) {
				return entries
			}
			return entries[len(entries)-n:]
		},
		"active":   func(incs []Incident) []Incident { return filterResolved(incs, false) },
		"resolved": func(incs []Incident) []Incident { return filterResolved(incs, true) },
		"union":    union,
		"marking":  func(m string) string { return markingWord(strings.ToUpper(strings.TrimSpace(m))) },
		"sensitive": func(m string) bool {
			m = strings.ToUpper(strings.TrimSpace(m))
			return m != "" && m != "OFFICIAL"
		},
		"withheldNotice": func() string { return w.withheld },
		"clockOr": func(t time.Time, fallback string) string {
			if t.IsZero() {
				return fallback
			}
			return t.Format("15:04")
		},
		"disrupted":   disrupted,
		"changesIn":   changesIn,
		"restored":    restored,
		"workarounds": workarounds,
		"allImpacts":  allImpacts,
	}
}

// filterResolved keeps the incidents that are (or are not) resolved.
func filterResolved(incs []Incident, resolved bool) []Incident {
	var out []Incident
	for _, in := range incs {
		if (in.Status == "resolved") == resolved {
			out = append(out, in)
		}
	}
	return out
}

// impactsIn keeps the impacts in any of nations; an empty list means
// every nation, so a recipient with no nation set is told everything.
func impactsIn(impacts []Impact, nations []string) []Impact {
	if len(nations) == 0 {
		return impacts
	}
	var out []Impact
	for _, im := range impacts {
		for _, n := range nations {
			if im.Nation == n {
				out = append(out, im)
				break
			}
		}
	}
	return out
}

// byNation groups impacts per nation, nations in nationOrder and any
// other nation after them in order of first appearance; within a nation
// the impacts keep their order.
func byNation(impacts []Impact) []NationImpacts {
	var out []NationImpacts
	index := map[string]int{}
	add := func(im Impact) {
		i, ok := index[im.Nation]
		if !ok {
			i = len(out)
			index[im.Nation] = i
			out = append(out, NationImpacts{Nation: im.Nation})
		}
		out[i].Impacts = append(out[i].Impacts, im)
	}
	order := nationOrder()
	for _, n := range order {
		for _, im := range impacts {
			if im.Nation == n {
				add(im)
			}
		}
	}
	for _, im := range impacts {
		known := false
		for _, n := range order {
			known = known || im.Nation == n
		}
		if !known {
			add(im)
		}
	}
	return out
}

// changesIn keeps the impact changes in any of nations; an empty list
// means every nation, as for impactsIn.
func changesIn(changes []ImpactChange, nations []string) []ImpactChange {
	if len(nations) == 0 {
		return changes
	}
	var out []ImpactChange
	for _, c := range changes {
		for _, n := range nations {
			if c.Nation == n {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// restored keeps the changes that brought a disrupted service back: from
// degraded or outage to restored or operational.
func restored(changes []ImpactChange) []ImpactChange {
	var out []ImpactChange
	for _, c := range changes {
		if isDisrupted(c.From) && (c.To == "restored" || c.To == "operational") {
			out = append(out, c)
		}
	}
	return out
}
