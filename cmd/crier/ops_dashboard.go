package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/crier-dev/crier/dashboard"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
)

// ops_dashboard.go is the app's side of the web dashboard: the same
// planner, store and checks as the API and the CLI, so a broadcast sent
// from a browser is the broadcast `crier send` would have sent.

// dashApp adapts the app to dashboard.App (the app's own Preflight and
// Broadcast serve the JSON API with other types).
type dashApp struct{ a *app }

var _ dashboard.App = dashApp{}

// newDashboard builds the dashboard. who asks the HTTP server (built
// after the dashboard, with its pages) who signed in.
func (a *app) newDashboard(who func(*http.Request) (server.Principal, bool)) (*dashboard.Dashboard, error) {
	return dashboard.New(dashboard.Options{Read: a.st, App: dashApp{a}, Notify: a.disp.Notify, Now: a.env.now, Log: a.log,
		Who: func(r *http.Request) (dashboard.Principal, bool) {
			p, ok := who(r)
			return dashboard.Principal{Name: p.Name, Role: p.Role, CSRF: p.CSRF}, ok
		}})
}

// dashboardPages are the dashboard's routes for the server to register.
func dashboardPages(d *dashboard.Dashboard) []server.Page {
	var out []server.Page
	for _, p := range d.Pages() {
		out = append(out, server.Page(p))
	}
	return out
}

// signinPage renders the server's sign-in page in the dashboard's look.
func signinPage(d *dashboard.Dashboard) func(http.ResponseWriter, *http.Request, server.SigninPage) {
	return func(w http.ResponseWriter, r *http.Request, p server.SigninPage) {
		d.SignIn(w, r, p.Status, dashboard.SignInView{Error: p.Error, Next: p.Next, Username: p.Username})
	}
}

// OpenIncident opens an incident and plans its alerts.
func (d dashApp) OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error) {
	return d.a.OpenIncident(ctx, c)
}

// ChangeIncident posts an update or resolves, and plans its alerts.
func (d dashApp) ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (dispatch.IncidentResult, error) {
	return d.a.ChangeIncident(ctx, id, kind, c)
}

// Choices lists the config's audiences, channels and briefings.
func (d dashApp) Choices() dashboard.Choices {
	cfg := d.a.cfg
	ch := dashboard.Choices{Audiences: sortedKeys(cfg.Audiences)}
	for _, name := range cfg.ChannelNames() {
		ch.Channels = append(ch.Channels, dashboard.ChannelChoice{Name: name, Kind: string(cfg.Channels[name].Kind())})
	}
	for _, name := range sortedKeys(cfg.Briefings) {
		b := cfg.Briefings[name]
		ch.Briefings = append(ch.Briefings, dashboard.BriefingChoice{Name: name, Title: b.Title, Schedule: b.Schedule, Audience: b.Audience,
			Channels: b.Channels})
	}
	return ch
}

// request checks c and builds its trigger; problems name the form's
// fields. key is the trigger key's tail ("preview" is never planned).
func (d dashApp) request(ctx context.Context, c dashboard.Compose, key string) (dispatch.Request, error) {
	a := d.a
	if c.Briefing != "" {
		if a.cfg.Briefings[c.Briefing] == nil {
			var errs fields.List
			errs.Add("briefing", c.Briefing, "is not a briefing in the config: choose one from the list")
			return dispatch.Request{}, errs.Err()
		}
		return a.previewRequest(ctx, server.PreflightRequest{Briefing: c.Briefing})
	}
	var errs fields.List
	for _, e := range a.checkBroadcast(server.BroadcastRequest{Audience: c.Audience, Channels: c.Channels, Body: c.Body}) {
		if strings.HasPrefix(e.Path, "channels[") {
			e.Path = "channels"
		}
		errs = append(errs, e)
	}
	if err := errs.Err(); err != nil {
		return dispatch.Request{}, err
	}
	return a.sendRequest(sendRequest{Audience: c.Audience, Channels: c.Channels, Subject: c.Subject, Body: c.Body, Critical: c.Critical, Key: key})
}

// Preflight renders what c would send.
func (d dashApp) Preflight(ctx context.Context, c dashboard.Compose) (dispatch.Preflight, error) {
	req, err := d.request(ctx, c, "preview")
	if err != nil {
		return dispatch.Preflight{}, err
	}
	return d.a.planner.Preflight(ctx, d.a.st, req, d.a.prices())
}

// RepeatOf is the broadcast identical to c planned within the repeat
// window, if any.
func (d dashApp) RepeatOf(ctx context.Context, c dashboard.Compose) (*store.Trigger, error) {
	if c.Briefing != "" {
		return nil, nil
	}
	return d.a.recentRepeat(ctx, composeSend(c))
}

// composeSend is the broadcast c asks for.
func composeSend(c dashboard.Compose) sendRequest {
	return sendRequest{Audience: c.Audience, Channels: c.Channels, Subject: c.Subject, Body: c.Body, Critical: c.Critical, Repeat: c.Repeat}
}

// Broadcast plans c: a briefing now (as `crier brief`), or a broadcast
// under the send button's key, so a second press plans nothing. A
// broadcast identical to one planned within the repeat window is answered
// with that one unless c.Repeat.
func (d dashApp) Broadcast(ctx context.Context, c dashboard.Compose) (dashboard.Sent, error) {
	if c.Briefing != "" {
		if _, err := d.request(ctx, c, ""); err != nil {
			return dashboard.Sent{}, err
		}
		out, err := d.a.FireBriefing(ctx, c.Briefing)
		return dashboard.Sent{Outcome: out}, err
	}
	if c.Key == "" {
		return dashboard.Sent{}, fmt.Errorf("dashboard broadcast without a key")
	}
	if _, err := d.request(ctx, c, "dashboard-"+c.Key); err != nil {
		return dashboard.Sent{}, err
	}
	r := composeSend(c)
	r.once = "dashboard-" + c.Key
	res, err := d.a.broadcast(ctx, r, false)
	return dashboard.Sent{Outcome: res.Outcome, RepeatOf: res.RepeatOf}, err
}

// ExportLog writes the log as `crier log --csv` or `--json` does.
func (d dashApp) ExportLog(ctx context.Context, f store.LogFilter, w io.Writer, format string) error {
	return printLog(ctx, d.a.st, f, w, format == "json", format == "csv")
}
