package templates

import (
	"slices"
	"time"
)

// sampleText is the free text of the sample data in one language: what
// operators would type into crier for the incident, in English and, for
// the Welsh sample, the Welsh version they would publish alongside it.
type sampleText struct {
	outageTitle, outageSummary                string
	prescriptions, referrals, dispatch, ooh   string // service names
	gpAppointments, nhsmail                   string
	wp10, fp10, byPhone, radio, oohLine, gpWA string // workarounds
	outage1, outage2, outage3                 string // timeline
	phonesTitle, phonesSummary                string
	phones1, phones2                          string
	mailTitle, mailSummary, mail1, mail2      string
	briefingName, subject, body               string
}

// sampleEnglish is the English sample text.
func sampleEnglish() sampleText {
	return sampleText{
		outageTitle: "NHS 111 clinical system outage",
		outageSummary: "A ransomware attack on the supplier of the NHS 111 clinical system has taken its services offline. " +
			"Patient referrals, ambulance dispatch, out-of-hours appointments and emergency prescriptions are affected " +
			"in all four nations. Contingency plans are in force.",
		prescriptions: "Emergency prescriptions", referrals: "Patient referrals", dispatch: "Ambulance dispatch",
		ooh: "Out-of-hours appointments", gpAppointments: "GP appointments", nhsmail: "NHSmail",
		wp10: "Use paper WP10 prescriptions.", fp10: "Use paper FP10 prescriptions.", byPhone: "Refer by phone.",
		radio:       "Control rooms are dispatching by radio and paper.",
		oohLine:     "Book by phone on the local contingency line.",
		gpWA:        "Practices are adding phone staff. Use online booking where it is available.",
		outage1:     "The supplier reports a cyber attack. Its NHS 111 systems have been taken offline as a precaution.",
		outage2:     "The supplier has confirmed ransomware. NCSC is part of the response. Paper contingency is in force in all four nations.",
		outage3:     "Patient referrals in Northern Ireland are restored after NCSC assurance. Other services remain on contingency.",
		phonesTitle: "GP practice phone lines under pressure",
		phonesSummary: "GP practices are taking calls that would normally go to NHS 111. " +
			"Waits on practice phone lines are longer than usual.",
		phones1:      "Practices report three times the usual number of calls.",
		phones2:      "Extra call handlers are in place. Waits are falling.",
		mailTitle:    "Delays to NHSmail delivery",
		mailSummary:  "Email between health boards was delayed by up to an hour.",
		mail1:        "Some emails are arriving late.",
		mail2:        "Mail queues have cleared.",
		briefingName: "Resilience response: ministers' morning briefing",
		subject:      "Paper prescription pads",
		body: "Paper WP10 and FP10 prescription pads are being delivered to every GP practice and pharmacy today. " +
			"If yours have not arrived by 14:00, call your health board's contingency line.",
	}
}

// sampleWelsh is the Welsh sample text.
func sampleWelsh() sampleText {
	return sampleText{
		outageTitle: "Methiant system glinigol GIG 111",
		outageSummary: "Mae ymosodiad meddalwedd wystlo ar gyflenwr system glinigol GIG 111 wedi tynnu ei wasanaethau all-lein. " +
			"Effeithir ar atgyfeiriadau cleifion, anfon ambiwlansys, apwyntiadau y tu allan i oriau a phresgripsiynau brys " +
			"ym mhob un o'r pedair gwlad. Mae cynlluniau wrth gefn ar waith.",
		prescriptions: "Presgripsiynau brys", referrals: "Atgyfeiriadau cleifion", dispatch: "Anfon ambiwlansys",
		ooh: "Apwyntiadau y tu allan i oriau", gpAppointments: "Apwyntiadau meddyg teulu", nhsmail: "NHSmail",
		wp10: "Defnyddiwch bresgripsiynau papur WP10.", fp10: "Defnyddiwch bresgripsiynau papur FP10.",
		byPhone: "Atgyfeiriwch dros y ffôn.",
		radio:   "Mae ystafelloedd rheoli yn anfon ambiwlansys drwy radio a phapur.",
		oohLine: "Trefnwch apwyntiad dros y ffôn ar y llinell wrth gefn leol.",
		gpWA:    "Mae practisau'n ychwanegu staff ffôn. Defnyddiwch y system archebu ar-lein lle mae ar gael.",
		outage1: "Mae'r cyflenwr yn rhoi gwybod am ymosodiad seiber. Mae ei systemau GIG 111 wedi'u tynnu all-lein fel rhagofal.",
		outage2: "Mae'r cyflenwr wedi cadarnhau mai meddalwedd wystlo sydd ar fai. Mae'r NCSC yn rhan o'r ymateb. " +
			"Mae trefniadau papur wrth gefn ar waith ym mhob un o'r pedair gwlad.",
		outage3: "Mae atgyfeiriadau cleifion yng Ngogledd Iwerddon wedi'u hadfer ar ôl sicrwydd gan yr NCSC. " +
			"Mae gwasanaethau eraill yn dal i ddefnyddio trefniadau wrth gefn.",
		phonesTitle: "Llinellau ffôn practisau meddygon teulu dan bwysau",
		phonesSummary: "Mae practisau meddygon teulu'n derbyn galwadau a fyddai fel arfer yn mynd i GIG 111. " +
			"Mae'r amser aros ar linellau ffôn practisau yn hirach na'r arfer.",
		phones1:      "Mae practisau'n dweud bod nifer y galwadau dair gwaith yn uwch na'r arfer.",
		phones2:      "Mae trinwyr galwadau ychwanegol ar waith. Mae'r amser aros yn gostwng.",
		mailTitle:    "Oedi wrth ddosbarthu NHSmail",
		mailSummary:  "Roedd oedi o hyd at awr ar negeseuon e-bost rhwng byrddau iechyd.",
		mail1:        "Mae rhai negeseuon e-bost yn cyrraedd yn hwyr.",
		mail2:        "Mae'r ciwiau post wedi clirio.",
		briefingName: "Ymateb cydnerthedd: briff boreol i weinidogion",
		subject:      "Padiau presgripsiwn papur",
		body: "Mae padiau presgripsiwn papur WP10 ac FP10 yn cael eu dosbarthu i bob practis meddyg teulu a fferyllfa heddiw. " +
			"Os nad ydyn nhw wedi cyrraedd erbyn 14:00, ffoniwch linell wrth gefn eich bwrdd iechyd.",
	}
}

// SampleData returns realistic data, with every field filled, from the
// case crier was built for: a ransomware attack on the supplier of the NHS
// 111 clinical system, seen by a clinician in Wales on the second morning.
// It is SampleDataFor("en").
func SampleData() Data { return SampleDataFor("en") }

// SampleDataFor returns the sample data as a recipient who reads locale
// would get it: for "cy" the incident text is the Welsh version (as
// operators would publish it alongside the English one), and NowLocal,
// NextBriefing, NextUpdate and PreviousBriefing are formatted in the
// locale. Any other locale gets the English text. Check and the golden
// files render every block with it.
//
// It is the email sample of the 08:00 briefing on the second day, for a
// recipient whose previous briefing was at 08:00 the day before: marked
// OFFICIAL-SENSITIVE (one timeline entry is), nothing withheld; the GP
// phone lines incident is new since then, the NHSmail one was resolved
// since then (it is in Resolved), and the outage has two new timeline
// entries and two changed impact cells.
func SampleDataFor(locale string) Data {
	txt := sampleEnglish()
	if locale == "cy" {
		txt = sampleWelsh()
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		london = time.FixedZone("BST", 3600) // no zoneinfo; the sample is in June
	}
	at := func(day, hour, minute int) time.Time {
		return time.Date(2026, time.June, day, hour, minute, 0, 0, time.UTC)
	}
	format := func(t time.Time) string { return FormatTime(t.In(london), locale) }
	entry := func(t time.Time, status, text string) Entry { return Entry{At: t, Status: status, Text: text} }
	now, previous := at(16, 7, 0), at(15, 7, 0)
	outage := Incident{
		IncidentID: "INC-2207", Title: txt.outageTitle, Severity: "critical", Status: "identified",
		Summary:  txt.outageSummary,
		OpenedAt: at(15, 5, 40), UpdatedAt: at(16, 6, 45),
		Impacts: []Impact{
			{txt.prescriptions, "wales", "outage", txt.wp10},
			{txt.referrals, "wales", "degraded", txt.byPhone},
			{txt.prescriptions, "england", "outage", txt.fp10},
			{txt.referrals, "england", "degraded", txt.byPhone},
			{txt.dispatch, "scotland", "degraded", txt.radio},
			{txt.ooh, "northern-ireland", "outage", txt.oohLine},
			{txt.referrals, "northern-ireland", "restored", ""},
		},
		Timeline: []Entry{
			entry(at(15, 5, 40), "investigating", txt.outage1),
			{At: at(15, 9, 30), Status: "identified", Text: txt.outage2, Marking: "OFFICIAL-SENSITIVE"},
			entry(at(16, 6, 45), "identified", txt.outage3),
		},
		Marking:      "OFFICIAL-SENSITIVE",
		NextUpdateAt: at(16, 11, 0),
		ImpactChanges: []ImpactChange{
			{Service: txt.dispatch, Nation: "scotland", From: "operational", To: "degraded", Workaround: txt.radio},
			{Service: txt.referrals, Nation: "northern-ireland", From: "outage", To: "restored"},
		},
	}
	phones := Incident{
		IncidentID: "INC-2209", Title: txt.phonesTitle, Severity: "major", Status: "monitoring",
		Summary:  txt.phonesSummary,
		OpenedAt: at(15, 8, 15), UpdatedAt: at(16, 6, 30),
		Impacts: []Impact{
			{txt.gpAppointments, "wales", "degraded", txt.gpWA},
			{txt.gpAppointments, "england", "degraded", txt.gpWA},
		},
		Timeline: []Entry{
			entry(at(15, 8, 15), "investigating", txt.phones1),
			entry(at(16, 6, 30), "monitoring", txt.phones2),
		},
		Marking: "OFFICIAL",
		New:     true,
		ImpactChanges: []ImpactChange{
			{Service: txt.gpAppointments, Nation: "england", To: "degraded", Workaround: txt.gpWA},
			{Service: txt.gpAppointments, Nation: "wales", To: "degraded", Workaround: txt.gpWA},
		},
	}
	mail := Incident{
		IncidentID: "INC-2204", Title: txt.mailTitle, Severity: "minor", Status: "resolved",
		Summary:  txt.mailSummary,
		OpenedAt: at(15, 11, 0), UpdatedAt: at(15, 14, 20), ResolvedAt: at(15, 14, 20),
		Impacts: []Impact{{txt.nhsmail, "wales", "restored", ""}},
		Timeline: []Entry{
			entry(at(15, 11, 0), "investigating", txt.mail1),
			entry(at(15, 14, 20), "resolved", txt.mail2),
		},
		Marking: "OFFICIAL",
		New:     true,
	}
	for _, in := range []*Incident{&outage, &phones, &mail} {
		in.UpdateText = in.Timeline[len(in.Timeline)-1].Text
		in.NextUpdate = format(in.NextUpdateAt)
		for _, e := range in.Timeline {
			if e.At.After(previous) {
				in.Changes = append(in.Changes, e)
			}
		}
	}
	return Data{
		Event:             EventAlert,
		Trigger:           "incident/INC-2207/update/3",
		Now:               now,
		NowLocal:          format(now),
		RecipientID:       "sub-0193",
		RecipientName:     "Dr Eleri Morgan",
		RecipientLocale:   locale,
		RecipientTimeZone: "Europe/London",
		RecipientNations:  []string{"wales"},
		IncidentID:        outage.IncidentID,
		Title:             outage.Title,
		Severity:          outage.Severity,
		Status:            outage.Status,
		Summary:           outage.Summary,
		UpdateText:        outage.UpdateText,
		OpenedAt:          outage.OpenedAt,
		UpdatedAt:         outage.UpdatedAt,
		Impacts:           outage.Impacts,
		Timeline:          outage.Timeline,
		ImpactChanges:     outage.ImpactChanges[1:], // the latest update restored referrals in Northern Ireland
		ResolvedAt:        at(16, 6, 50),            // for the resolve templates, which render this sample too
		Marking:           outage.Marking,
		NextUpdate:        outage.NextUpdate,
		NextUpdateAt:      outage.NextUpdateAt,
		Incidents:         []Incident{outage, phones},
		Resolved:          []Incident{mail},
		PreviousBriefing:  format(previous),
		BriefingName:      txt.briefingName,
		NextBriefing:      format(at(16, 16, 0)),
		NextBriefingAt:    at(16, 16, 0),
		Subject:           txt.subject,
		Body:              txt.body,
		DashboardURL:      "https://crier.example.org/incidents/INC-2207",
	}
}

// SampleFirstBriefing is SampleDataFor(locale) for a recipient who has
// never had this briefing: PreviousBriefing is "", no incident is flagged
// New, every incident's Changes is its whole timeline and ImpactChanges is
// empty (the full matrix is the picture), and the recently resolved
// incident is still in Resolved.
func SampleFirstBriefing(locale string) Data {
	d := SampleDataFor(locale)
	d.Event = EventBriefing
	d.PreviousBriefing = ""
	for i := range d.Incidents {
		in := &d.Incidents[i]
		in.New = false
		in.Changes = slices.Clone(in.Timeline)
		in.ImpactChanges = nil
	}
	for i := range d.Resolved {
		d.Resolved[i].New = false
		d.Resolved[i].Changes = slices.Clone(d.Resolved[i].Timeline)
	}
	return d
}
