package templates

import "time"

// The events a template can be written for.
const (
	EventAlert    = "alert"    // an incident was opened or changed severity or status
	EventUpdate   = "update"   // a new timeline update on an incident
	EventResolve  = "resolve"  // an incident was resolved
	EventBriefing = "briefing" // a scheduled situation report
	EventMessage  = "message"  // an ad-hoc broadcast
)

// Events lists every event in a stable order.
func Events() []string {
	return []string{EventAlert, EventUpdate, EventResolve, EventBriefing, EventMessage}
}

// Data is everything a template can print, for one recipient and one
// trigger. It is flat on purpose (as in Alertmanager): template authors
// write {{.Title}}, not {{.Incident.Current.Title}}, and a missing value
// is an empty string rather than a nil pointer.
//
// Before execution Render works on a copy: every time.Time is moved into
// RecipientTimeZone, Event is set to the event rendered, RecipientLocale
// and NowLocal are filled when empty, and for Slack every string (at any
// depth) has & < > escaped. The caller's Data is never modified.
type Data struct {
	// Event is what happened: alert, update, resolve, briefing or message.
	Event string
	// Trigger is the trigger's key (the idempotency key's first part), for
	// reference in footers.
	Trigger string
	// Now is when the message was planned.
	Now time.Time
	// NowLocal is Now in the recipient's zone and language, as FormatTime
	// writes it; Render fills it when empty.
	NowLocal string

	// RecipientID is the subscriber's id.
	RecipientID string
	// RecipientName is the subscriber's display name ("Dr Eleri Morgan").
	RecipientName string
	// RecipientLocale is the language the message is written in: "en" or
	// "cy". Render fills it with the locale rendered when empty.
	RecipientLocale string
	// RecipientTimeZone is an IANA zone name ("Europe/London"); "" means
	// UTC. Every time in Data is shown in this zone.
	RecipientTimeZone string
	// RecipientNations are the canonical nations the recipient follows
	// ("wales"); empty means all. Templates pass it to impactsIn so that a
	// clinician's SMS lists only their nation's services.
	RecipientNations []string

	// IncidentID is the incident's id ("INC-2207"); empty for briefing and
	// message.
	IncidentID string
	// Title is the incident's one-line title. Free text from an operator:
	// never trusted.
	Title string
	// Severity is critical, major or minor.
	Severity string
	// Status is investigating, identified, monitoring or resolved.
	Status string
	// Summary is a few sentences on what is happening.
	Summary string
	// UpdateText is the newest timeline entry's text.
	UpdateText string
	// OpenedAt is when the incident was opened.
	OpenedAt time.Time
	// UpdatedAt is when the incident last changed.
	UpdatedAt time.Time
	// Impacts are the affected services, one per service × nation.
	Impacts []Impact
	// Timeline is the incident's updates, newest last.
	Timeline []Entry

	// Incidents, for a briefing, is every active incident and every one
	// resolved since the recipient's previous briefing, each with the same
	// fields as above.
	Incidents []Incident
	// BriefingName is the schedule's display name ("Ministers' morning
	// briefing").
	BriefingName string
	// NextBriefing is when the next briefing is due, already formatted in
	// the recipient's zone and language (FormatTime does that).
	NextBriefing string

	// Subject is an ad-hoc message's subject (event message).
	Subject string
	// Body is an ad-hoc message's text (event message).
	Body string

	// DashboardURL links to the incident or briefing in crier's
	// dashboard; may be empty.
	DashboardURL string
}

// Impact is one service's state in one nation.
type Impact struct {
	// Service is the service's display name ("Emergency prescriptions").
	Service string
	// Nation is a canonical nation id: england, wales, scotland or
	// northern-ireland.
	Nation string
	// Status is operational, degraded, outage or restored.
	Status string
	// Workaround is what to do instead ("Use paper WP10 prescriptions"); may
	// be empty.
	Workaround string
}

// Entry is one timeline update.
type Entry struct {
	// At is when the update was published.
	At time.Time
	// Status is the incident status the update set.
	Status string
	// Text is what the update said.
	Text string
}

// Incident is one incident inside a briefing; its fields mean what the
// incident fields of Data mean.
type Incident struct {
	IncidentID, Title, Severity, Status, Summary, UpdateText string
	OpenedAt, UpdatedAt                                      time.Time
	Impacts                                                  []Impact
	Timeline                                                 []Entry
}
