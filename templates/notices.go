package templates

// WithheldNotice is the sentence the planner puts in place of sensitive
// text (summary, update text, sensitive timeline entries) on a channel
// not cleared for it, in the locale's language. An unknown locale gets
// English, as FormatTime does; such a locale has no templates to render
// anyway.
func WithheldNotice(locale string) string { return wordsOrEnglish(locale).withheld }

// SMSPointer is what FitSMS appends when an SMS is shortened to the
// channel's segment limit (" … full details by email"), with a leading
// space, in the locale's language. Its ellipsis becomes "..." in FitSMS, so
// it costs no UCS-2; the Welsh pointer uses only GSM-7 letters so that it
// never turns a plain message into UCS-2 by itself.
// The planner uses it only for a recipient who is being sent an email in
// the same trigger.
func SMSPointer(locale string) string { return wordsOrEnglish(locale).pointer }

// SMSLinkPointer is what FitSMS appends to a shortened SMS whose
// recipient gets no email with it but can read the rest at url (the
// incident's page): " … more: crier.example.org/incidents/INC-1", in the
// locale's language.
func SMSLinkPointer(locale, url string) string { return wordsOrEnglish(locale).linkPointer + url }

// SMSEllipsis is what FitSMS appends to a shortened SMS when there is
// nowhere to point its recipient: the ellipsis alone (it becomes "...").
const SMSEllipsis = " …"

// wordsOrEnglish returns the locale's vocabulary, or English's.
func wordsOrEnglish(locale string) *words {
	if w := localeWords(locale); w != nil {
		return w
	}
	return localeWords("en")
}

// union returns the incidents of a followed by those of b whose
// IncidentID is not already listed, so that a template can list
// Data.Resolved together with any resolved incident still in Incidents
// without naming one twice.
func union(a, b []Incident) []Incident {
	out := make([]Incident, 0, len(a)+len(b))
	seen := make(map[string]bool, len(a)+len(b))
	for _, list := range [][]Incident{a, b} {
		for _, in := range list {
			if in.IncidentID != "" && seen[in.IncidentID] {
				continue
			}
			seen[in.IncidentID] = true
			out = append(out, in)
		}
	}
	return out
}

// isDisrupted reports whether an impact status means the service is not
// working normally, so that a workaround is in force.
func isDisrupted(status string) bool { return status == "degraded" || status == "outage" }

// disrupted keeps the impacts whose service is degraded or out.
func disrupted(impacts []Impact) []Impact {
	var out []Impact
	for _, im := range impacts {
		if isDisrupted(im.Status) {
			out = append(out, im)
		}
	}
	return out
}

// workarounds keeps the disrupted impacts that have a workaround: the
// actions in force.
func workarounds(impacts []Impact) []Impact {
	var out []Impact
	for _, im := range disrupted(impacts) {
		if im.Workaround != "" {
			out = append(out, im)
		}
	}
	return out
}

// allImpacts concatenates the impacts of every incident, in order, so that
// a short message can group one nation's services across incidents.
func allImpacts(incs []Incident) []Impact {
	var out []Impact
	for _, in := range incs {
		out = append(out, in.Impacts...)
	}
	return out
}
