package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// Broadcaster plans ad-hoc broadcasts and reports how any trigger's
// deliveries stand.
type Broadcaster interface {
	// Broadcast pre-flights r and, unless r.PreflightOnly, plans it.
	// Problems with the request come back as a fields.List (422).
	Broadcast(ctx context.Context, r BroadcastRequest) (BroadcastResult, error)
	// Progress counts the deliveries of the trigger with key trigger;
	// store.ErrNotFound when there is no such trigger.
	Progress(ctx context.Context, trigger string) (Progress, error)
}

// SubscriberAdmin lists and saves subscribers. The server normalises
// every subscriber (subscribers.Subscriber.Normalize) before saving.
type SubscriberAdmin interface {
	Subscribers(ctx context.Context) ([]subscribers.Subscriber, error)
	// SaveSubscribers stores list in one transaction, with source "api".
	// If any subscriber cannot be saved as mode asks it returns
	// SubscriberConflicts and saves nothing.
	SaveSubscribers(ctx context.Context, list []subscribers.Subscriber, mode SaveMode) (SaveResult, error)
}

// ScheduleRunner shows briefing schedules and fires a briefing now.
type ScheduleRunner interface {
	// Schedules lists every briefing with its next n fire times.
	Schedules(ctx context.Context, n int) ([]Schedule, error)
	// FireBriefing plans the named briefing now, as `crier brief NAME`
	// does; store.ErrNotFound for a briefing that is not configured.
	FireBriefing(ctx context.Context, name string) (dispatch.Outcome, error)
}

// BroadcastRequest is an ad-hoc message to an audience.
type BroadcastRequest struct {
	Audience string   `json:"audience"`
	Channels []string `json:"channels"`
	Subject  string   `json:"subject,omitempty"`
	Body     string   `json:"body"`
	// Critical sends ahead of other traffic and through quiet hours.
	Critical bool `json:"critical,omitempty"`
	// Key is the trigger key: a key is never planned twice. Without one,
	// a broadcast identical to one planned within the repeat window
	// (broadcasts.repeat_window) is answered with that one (RepeatOf).
	Key string `json:"key,omitempty"`
	// Repeat sends a broadcast without a key even if an identical one was
	// planned within the repeat window.
	Repeat bool `json:"repeat,omitempty"`
	// PreflightOnly answers with the pre-flight and plans nothing.
	PreflightOnly bool `json:"preflight_only,omitempty"`
	// Ack asks every recipient to acknowledge, escalating when they do not.
	Ack *BroadcastAck `json:"ack,omitempty"`
}

// BroadcastAck is a broadcast's acknowledgement request, as an alert
// rule's ack: in the config.
type BroadcastAck struct {
	// Within is how long recipients have to acknowledge ("15m").
	Within string `json:"within"`
	// Quorum is how many acknowledgements are enough (0: everyone).
	Quorum int `json:"quorum,omitempty"`
	// Escalate is the ladder of channel instances, in order.
	Escalate []string `json:"escalate,omitempty"`
	// Deputy is the audience told when a recipient's ladder is used up.
	Deputy string `json:"deputy,omitempty"`
}

// BroadcastResult is what a broadcast did: its trigger and planned
// counts (absent for a pre-flight only) and its pre-flight (absent when
// nothing new was planned: nothing was rendered).
type BroadcastResult struct {
	PreflightOnly bool `json:"preflight_only"`
	*dispatch.Outcome
	Preflight *dispatch.Preflight `json:"preflight,omitempty"`
	// RepeatOf, when set, is the earlier identical broadcast that answers
	// this one: nothing was planned, and the trigger fields are that
	// broadcast's.
	RepeatOf *RepeatOf `json:"repeat_of,omitempty"`
}

// RepeatOf names the earlier identical broadcast that answered a
// broadcast sent without a key.
type RepeatOf struct {
	TriggerID int64     `json:"trigger_id"`
	Trigger   string    `json:"trigger"`
	PlannedAt time.Time `json:"planned_at"`
	// Window is the repeat window it fell in ("10m0s").
	Window string `json:"window"`
	// Message says so in a sentence, with how to send it anyway.
	Message string `json:"message"`
}

// Progress is how a trigger's deliveries stand.
type Progress struct {
	TriggerID  int64     `json:"trigger_id"`
	Trigger    string    `json:"trigger"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name,omitempty"`
	IncidentID string    `json:"incident_id,omitempty"`
	PlannedAt  time.Time `json:"planned_at"`
	Total      int       `json:"total"`
	// Counts has every delivery status (zero included) and acknowledged:
	// the people who acknowledged.
	Counts map[string]int `json:"counts"`
	// Done is true when nothing is queued or sending any more.
	Done bool `json:"done"`
}

// SaveMode says whether saved subscribers must be new, must exist, or either.
type SaveMode string

// The save modes.
const (
	SaveCreate SaveMode = "create"
	SaveUpdate SaveMode = "update"
	SaveUpsert SaveMode = "upsert"
)

// SaveResult counts what a save did.
type SaveResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
}

// SubscriberConflict is one subscriber that cannot be saved as asked.
type SubscriberConflict struct {
	Index int    // position in the saved list
	ID    string // the subscriber's id
	Code  string // exists, not_found or config_managed
	Msg   string // what to do
}

// SubscriberConflicts lists every conflict of one save; nothing was saved.
type SubscriberConflicts []SubscriberConflict

// Error lists each conflicting id with what to do.
func (c SubscriberConflicts) Error() string {
	msgs := make([]string, len(c))
	for i, x := range c {
		msgs[i] = x.ID + ": " + x.Msg
	}
	return strings.Join(msgs, "; ")
}

// Schedule is one briefing: when it fires next, in its zone, and how its
// latest occurrence went.
type Schedule struct {
	Briefing string `json:"briefing"`
	Title    string `json:"title,omitempty"`
	// Spec is the cron spec; "" for a briefing only fired by hand.
	Spec     string     `json:"schedule"`
	TimeZone string     `json:"time_zone"`
	Next     []FireTime `json:"next"`
	// LastRun is the latest recorded occurrence; nil if it never ran.
	LastRun *ScheduleRun `json:"last_run,omitempty"`
	// State is ok, late, missed, failed, pending, never_run or unscheduled.
	State string `json:"state"`
	// Why explains a state other than ok.
	Why string `json:"why,omitempty"`
}

// FireTime is one upcoming occurrence.
type FireTime struct {
	At time.Time `json:"at"` // with the schedule's zone offset
	// Local is the time as people in the zone read it.
	Local string `json:"local"`
	// ClockChange warns of a clock change that day (a run may be skipped or doubled).
	ClockChange string `json:"clock_change,omitempty"`
}

// ScheduleRun is one recorded occurrence and how its deliveries stand.
type ScheduleRun struct {
	DueAt      time.Time `json:"due_at"`
	FiredAt    time.Time `json:"fired_at"`
	Late       bool      `json:"late"`
	TriggerID  int64     `json:"trigger_id,omitempty"`
	Error      string    `json:"error,omitempty"`
	Sent       int       `json:"sent"`
	Pending    int       `json:"pending"`
	Failed     int       `json:"failed"`
	Suppressed int       `json:"suppressed"`
}

// registerAPI adds the /api/v1 routes beyond the incident core: the
// timeline, the delivery export and the OpenAPI document always; the
// broadcast, subscriber and schedule routes when their Options are set.
func (s *Server) registerAPI() {
	s.route("GET", "/api/v1/openapi.json", "", s.openAPI)
	s.route("GET", "/api/v1/incidents/{id}/timeline", "viewer", s.timeline)
	s.route("GET", "/api/v1/deliveries/export", "viewer", s.exportDeliveries)
	if s.o.Broadcasts != nil {
		s.route("POST", "/api/v1/broadcasts", "operator", s.idempotent(s.createBroadcast))
		s.route("GET", "/api/v1/broadcasts/{trigger}", "viewer", s.broadcastProgress)
	}
	if s.o.Subscribers != nil {
		s.route("GET", "/api/v1/subscribers", "viewer", s.listSubscribers)
		s.route("POST", "/api/v1/subscribers", "admin", s.idempotent(s.createSubscriber))
		s.route("PUT", "/api/v1/subscribers/{id}", "admin", s.updateSubscriber)
		s.route("POST", "/api/v1/subscribers/import", "admin", s.idempotent(s.importSubscribers))
	}
	if s.o.Schedules != nil {
		s.route("GET", "/api/v1/schedules", "viewer", s.listSchedules)
		s.route("POST", "/api/v1/schedules/{name}/fire", "operator", s.idempotent(s.fireSchedule))
	}
}

// failAPI is fail plus ErrBadRequest (422), whose message is written for
// the caller and safe to echo.
func (s *Server) failAPI(w http.ResponseWriter, err error, field string) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusUnprocessableEntity, "invalid", field, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "", err.Error())
	default:
		s.fail(w, err)
	}
}
