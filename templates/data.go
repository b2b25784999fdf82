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
	// ImpactChanges, for an incident event, are the service × nation
	// cells this event changed, in the order it lists them, each with its
	// status before (From; "" when the event first lists the cell) and
	// now. Templates pick the recipient's nations with changesIn and the
	// services brought back with restored ("Restored: Referrals (Wales).").
	ImpactChanges []ImpactChange

	// ResolvedAt is when the incident was resolved; zero while it is
	// active. Resolve templates print it, falling back to UpdatedAt.
	ResolvedAt time.Time
	// Marking is the protective marking of this message: "OFFICIAL" or
	// "OFFICIAL-SENSITIVE" ("" = not stated). Email prints it at the top
	// and bottom, as UK government documents do, and puts a sensitive
	// marking in the subject; SMS and Slack never get OFFICIAL-SENSITIVE
	// content (the planner withholds it), so their templates do not print it.
	Marking string
	// Withheld is true when sensitive detail was removed for this channel:
	// the text fields (Summary, UpdateText, sensitive Timeline and Changes
	// entries) then hold WithheldNotice, and templates may say where the
	// full briefing went.
	Withheld bool
	// NextUpdate is when the incident's next update is due, formatted in
	// the recipient's zone and language (FormatTime); "" if none is
	// promised. Alert, update and resolve templates print "Next update by …"
	// when it is set.
	NextUpdate string
	// NextUpdateAt is NextUpdate as a time, for templates that want a short
	// form (SMS prints clock NextUpdateAt); zero when unknown, and
	// templates then fall back to NextUpdate.
	NextUpdateAt time.Time

	// Incidents, for a briefing, is every active incident, each with the
	// same fields as above plus what changed since the recipient's
	// previous briefing. (Before Resolved existed the planner also put
	// recently resolved incidents here; templates still list any resolved
	// incident found here under Resolved.)
	Incidents []Incident
	// Resolved, for a briefing, is every incident resolved since the
	// recipient's previous briefing (or recently, for a first briefing):
	// the planner moves them out of Incidents into Resolved.
	Resolved []Incident
	// PreviousBriefing is when this recipient last received this briefing,
	// formatted in their zone and language; "" means this is their first
	// briefing, which gives the full picture (every timeline entry).
	PreviousBriefing string
	// BriefingName is the schedule's display name ("Ministers' morning
	// briefing").
	BriefingName string
	// NextBriefing is when the next briefing is due, already formatted in
	// the recipient's zone and language (FormatTime does that).
	NextBriefing string
	// NextBriefingAt is NextBriefing as a time, for templates that want a
	// short form (the briefing SMS prints clock NextBriefingAt); zero when
	// unknown, and templates then fall back to NextBriefing.
	NextBriefingAt time.Time

	// Subject is an ad-hoc message's subject (event message).
	Subject string
	// Body is an ad-hoc message's text (event message).
	Body string

	// DashboardURL links to the incident or briefing in crier's
	// dashboard; may be empty.
	DashboardURL string

	// AckRequired is true when the recipient is asked to acknowledge this
	// message; templates then say how and by when.
	AckRequired bool
	// AckBy is the acknowledgement deadline, formatted in the recipient's
	// zone and language (FormatTime); "" when AckRequired is false.
	AckBy string
	// AckByAt is AckBy as a time, for templates that want a short form
	// (SMS prints clockOr .AckByAt .AckBy); zero when AckRequired is false.
	AckByAt time.Time
	// AckURL is the recipient's own signed acknowledgement link (the GET
	// shows a confirm button; only its POST acknowledges); "" when no link
	// can be made. It identifies the recipient: a message that prints it is
	// rendered for each recipient (see Set.Personal).
	AckURL string
	// AckReply is what an SMS recipient replies to acknowledge, in the
	// message's language: "Reply ACK", "Atebwch ACK" (AckReply(locale)).
	AckReply string
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
	// Text is what the update said (WithheldNotice when the entry was
	// sensitive and withheld from this channel).
	Text string
	// Marking is the entry's protective marking; "" means OFFICIAL. Email
	// tags OFFICIAL-SENSITIVE entries so a reader knows what not to pass on.
	Marking string
}

// ImpactChange is one service × nation cell that changed: since the
// recipient's previous briefing (Incident.ImpactChanges), or in the event
// being sent (Data.ImpactChanges).
type ImpactChange struct {
	// Service is the service's display name.
	Service string
	// Nation is a canonical nation id.
	Nation string
	// From is the impact status at the previous briefing (or before the
	// event); "" when the cell was not listed then (a newly affected
	// service).
	From string
	// To is the impact status now.
	To string
	// Workaround is the workaround now in force; may be empty.
	Workaround string
}

// Incident is one incident inside a briefing; its first fields mean what
// the incident fields of Data mean.
type Incident struct {
	IncidentID, Title, Severity, Status, Summary, UpdateText string
	OpenedAt, UpdatedAt                                      time.Time
	Impacts                                                  []Impact
	Timeline                                                 []Entry

	// Marking is the incident's protective marking (it covers the summary).
	Marking string
	// NextUpdate is when the next update is due, formatted; "" if none.
	NextUpdate string
	// NextUpdateAt is NextUpdate as a time; zero when unknown.
	NextUpdateAt time.Time
	// ResolvedAt is when the incident was resolved; zero while active.
	ResolvedAt time.Time
	// New is true when the incident was opened since the recipient's
	// previous briefing. Templates flag it only when there was one.
	New bool
	// Changes are the timeline entries since the recipient's previous
	// briefing, oldest first (all of them when PreviousBriefing is ""); the
	// planner fills it.
	Changes []Entry
	// ImpactChanges are the impact cells that changed since the previous
	// briefing; the planner fills it.
	ImpactChanges []ImpactChange
}
