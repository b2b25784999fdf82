// Package dashboard is crier's web UI, served by `crier serve` at /: the
// incidents with their impact matrix and timeline, composing a broadcast
// or firing a briefing after a pre-flight, a broadcast's progress live
// over server-sent events, the delivery log with each recipient's exact
// messages, the schedules, and a chart of outcomes per channel.
//
// Pages are html/template (everything escaped) and one CSS file, embedded
// in the binary; the only script follows a broadcast's progress, and every
// read-only page works without it. The package knows no HTTP router and no
// sign-in: it lists its pages with the role each needs, and the server
// registers them behind its own authentication.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
)

//go:embed web
var webFS embed.FS

// Principal is who is signed in, as the server's authentication says.
type Principal struct {
	Name string
	Role string // viewer, operator or admin
	// CSRF is the session's anti-forgery token, put in every form.
	CSRF string
}

// Page is one dashboard route for the server to register with the role it
// needs ("" for the public stylesheet and script).
type Page struct {
	Method, Pattern, Role string
	Handler               http.HandlerFunc
}

// Reader is what the pages read; *store.Store implements it.
type Reader interface {
	Incidents(ctx context.Context, activeOnly bool) ([]*incidents.Incident, error)
	Incident(ctx context.Context, id string) (*incidents.Incident, error)
	Log(ctx context.Context, f store.LogFilter, fn func(*store.LogEntry) error) error
	Events(ctx context.Context, deliveryID int64) ([]store.Event, error)
	Tally(ctx context.Context, f store.TallyFilter) ([]store.TallyRow, error)
	Trigger(ctx context.Context, id int64) (store.Trigger, error)
	RecentTriggers(ctx context.Context, limit int) ([]store.Trigger, error)
	Outcomes(ctx context.Context, since time.Time, step time.Duration) ([]store.OutcomeBucket, error)
	LastRun(ctx context.Context, schedule string) (store.ScheduleRun, bool, error)
	RunOutcome(ctx context.Context, schedule string, due time.Time) (store.RunOutcome, error)
}

// App is what the forms do, and what only the running application knows
// (its audiences, channels and briefings).
type App interface {
	OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error)
	ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (dispatch.IncidentResult, error)
	// Choices lists what a broadcast or briefing can name.
	Choices() Choices
	// Preflight renders what c would send, without sending it.
	Preflight(ctx context.Context, c Compose) (dispatch.Preflight, error)
	// RepeatOf is the broadcast identical to c planned within the repeat
	// window (broadcasts.repeat_window), if any: sending c would not send
	// it again unless c.Repeat.
	RepeatOf(ctx context.Context, c Compose) (*store.Trigger, error)
	// Broadcast plans c (a broadcast, or a briefing fired now).
	Broadcast(ctx context.Context, c Compose) (Sent, error)
	// ExportLog writes the deliveries f selects as csv or json (one
	// object a line), with the same columns as `crier log`.
	ExportLog(ctx context.Context, f store.LogFilter, w io.Writer, format string) error
}

// Choices are the names a broadcast or briefing can use.
type Choices struct {
	Audiences []string
	Channels  []ChannelChoice
	Briefings []BriefingChoice
}

// ChannelChoice is one channel instance and the kind it sends.
type ChannelChoice struct {
	Name, Kind string
}

// BriefingChoice is one configured briefing.
type BriefingChoice struct {
	Name, Title string
	// Schedule is its cron spec ("" when it is only sent by hand).
	Schedule string
	Audience string
	Channels []string
}

// Compose is a broadcast or a briefing to check or send: Briefing, or
// Audience with Channels and Body.
type Compose struct {
	Briefing string
	Audience string
	Channels []string
	Subject  string
	Body     string
	Critical bool
	// Key makes sending idempotent: the same key never plans twice.
	Key string
	// Repeat sends a broadcast even if an identical one was planned
	// within the repeat window.
	Repeat bool
}

// Sent is what sending a Compose did.
type Sent struct {
	dispatch.Outcome
	// RepeatOf, when set, is the earlier identical broadcast that answered
	// it: nothing was planned, and Outcome is that broadcast's.
	RepeatOf *store.Trigger
}

// Options configure the dashboard.
type Options struct {
	Read Reader
	App  App
	// Who says who is signed in; the server's authentication has already
	// let the request through when a page handler runs.
	Who func(*http.Request) (Principal, bool)
	// Notify wakes the dispatcher after a form planned deliveries.
	Notify func()
	Now    func() time.Time
	// Location is the zone times are shown in (default UTC; every time
	// is labelled with its zone).
	Location *time.Location
	// Poll is how often a live progress stream re-reads the counts
	// (default 500ms).
	Poll time.Duration
	// MaxStream bounds one progress stream; the browser reconnects after
	// it (default 10m).
	MaxStream time.Duration
	Log       *slog.Logger
}

// Dashboard serves the pages.
type Dashboard struct {
	o       Options
	pages   map[string]*pageTemplate
	statics map[string]string // file name → URL with its content hash
	done    chan struct{}
	once    sync.Once
}

// New builds the dashboard; it parses every template now, so a broken one
// stops start-up rather than a page.
func New(o Options) (*Dashboard, error) {
	if o.Read == nil || o.App == nil {
		return nil, errors.New("dashboard: Options.Read and Options.App are required")
	}
	if o.Who == nil {
		o.Who = func(*http.Request) (Principal, bool) { return Principal{}, false }
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.MaxStream <= 0 {
		o.MaxStream = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{o: o, done: make(chan struct{})}
	if err := d.parse(); err != nil {
		return nil, err
	}
	return d, nil
}

// Close ends every live progress stream (the server is shutting down and
// would otherwise wait for them).
func (d *Dashboard) Close() { d.once.Do(func() { close(d.done) }) }

// Pages lists every route with the role it needs: viewers read, operators
// change incidents and send.
func (d *Dashboard) Pages() []Page {
	ps := []Page{
		{"GET", "/static/{file}", "", d.static},
		{"GET", "/{$}", "viewer", d.overview},
		{"GET", "/incidents", "viewer", d.incidentList},
		{"GET", "/incidents/new", "operator", d.newIncident},
		{"POST", "/incidents", "operator", d.openIncident},
		{"GET", "/incidents/{id}", "viewer", d.incident},
		{"POST", "/incidents/{id}/updates", "operator", d.changeIncident("update")},
		{"POST", "/incidents/{id}/resolve", "operator", d.changeIncident("resolve")},
		{"GET", "/compose", "operator", d.compose},
		{"POST", "/compose", "operator", d.preflight},
		{"POST", "/broadcasts", "operator", d.send},
		{"GET", "/broadcasts", "viewer", d.broadcasts},
		{"GET", "/broadcasts/{id}", "viewer", d.broadcast},
		{"GET", "/broadcasts/{id}/events", "viewer", d.broadcastEvents},
		{"GET", "/log", "viewer", d.log},
		{"GET", "/log/export", "viewer", d.export},
		{"GET", "/log/{id}", "viewer", d.delivery},
		{"GET", "/recipients/{id}", "viewer", d.recipient},
		{"GET", "/schedules", "viewer", d.schedules},
	}
	for i := range ps {
		ps[i].Handler = secure(ps[i].Handler)
	}
	return ps
}

// rank orders roles as the server does; an unknown role ranks lowest.
func rank(role string) int {
	switch role {
	case "viewer":
		return 1
	case "operator":
		return 2
	case "admin":
		return 3
	}
	return 0
}

// can reports whether p has at least role.
func (p Principal) can(role string) bool { return rank(p.Role) > 0 && rank(p.Role) >= rank(role) }
