package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/channels/sandbox"
	"github.com/crier-dev/crier/channels/slack"
	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/internal/gcpolicy"
	"github.com/crier-dev/crier/metrics"
	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// wire.go is the one file that knows every concrete type: it turns a
// config into channels, a planner, a dispatcher and a scheduler.

// env is what every command gets from main: streams, clock, environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time

	// stdin is where crier users add reads a password and crier retry
	// its confirmation (nil: os.Stdin).
	stdin io.Reader
	// isTerminal, if set, replaces the check that stdin is a terminal.
	isTerminal func(io.Reader) bool

	// gc is the collector policy main applied (zero in tests).
	gc gcpolicy.Settings

	// channelOpts lets tests point real channels at in-process peers.
	twilioOpts []twilio.Option
	emailOpts  []email.Option
	slackOpts  []slack.Option
}

// app is a loaded config with everything built from it.
type app struct {
	// leading: this process runs the scheduler (see lead).
	leading  atomic.Bool
	cfg      *config.Config
	st       *store.Store
	tmpl     *templates.Set
	planner  *dispatch.Planner
	disp     *dispatch.Dispatcher
	sched    *scheduler.Scheduler
	log      *slog.Logger
	chans    map[string]channels.Channel
	closers  []io.Closer
	env      *env
	schedule map[string]string // briefing → cron spec
	metrics  *metrics.Metrics
	acks     *dispatch.AckSigner // nil without webhooks.ack_secret
	esc      *dispatch.Escalator
	// sameBroadcast handles identical broadcasts one at a time (see broadcast).
	sameBroadcast keyedMutex
}

// loadConfig reads and validates the config and the templates it names,
// rendering every template against sample data.
func loadConfig(path string, e *env) (*config.Config, *templates.Set, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w (pass --config or set CRIER_CONFIG)", err)
	}
	abs, _ := absDir(path)
	return parseConfig(raw, abs, e)
}

// parseConfig is loadConfig for bytes already read; dir anchors relative paths.
func parseConfig(raw []byte, dir string, e *env) (*config.Config, *templates.Set, error) {
	cfg, err := config.Parse(raw, dir, e.getenv)
	var problems fields.List
	if err != nil {
		l, ok := fields.AsList(err)
		if !ok {
			return nil, nil, err
		}
		problems = l
	}
	var tmpl *templates.Set
	if cfg != nil {
		tmpl, err = templates.Load(cfg.Resolve(cfg.Templates.Dir))
		if err != nil {
			problems = append(problems, &fields.Error{Path: "templates.dir", Value: cfg.Templates.Dir, Msg: err.Error(), Line: cfg.Line("templates.dir")})
		} else {
			for _, terr := range tmpl.Check() {
				problems = append(problems, &fields.Error{Path: "templates", Msg: terr.Error()})
			}
			if len(problems) == 0 {
				problems = append(problems, checkLocales(cfg, tmpl)...)
			}
		}
	}
	for _, p := range problems {
		if p.Line == 0 && cfg != nil {
			p.Line = cfg.Line(p.Path)
		}
	}
	if err := problems.Err(); err != nil {
		return nil, nil, err
	}
	return cfg, tmpl, nil
}

// checkLocales makes sure every recipient of every briefing and alert rule
// has templates in their language for every channel they would get, so a
// missing Welsh template stops the config, not a broadcast.
func checkLocales(cfg *config.Config, tmpl *templates.Set) fields.List {
	var errs fields.List
	people := cfg.People()
	check := func(path, audience, event string, chans []string) {
		a := cfg.Audiences[audience]
		if a == nil {
			return
		}
		seen := map[string]bool{}
		for i := range people {
			s := &people[i]
			if !a.Selector.Match(s, subscribers.Nations()) {
				continue
			}
			for _, ch := range chans {
				k := cfg.Channels[ch].Kind()
				key := string(k) + "/" + s.Locale
				if seen[key] {
					continue
				}
				seen[key] = true
				if !tmpl.Has(event, k, s.Locale) {
					errs.Add(path, event, "no %s template for %s in locale %q (needed by %s): add %s/%s.%s.* to the templates directory",
						k, event, s.Locale, s.ID, s.Locale, event, k)
				}
			}
		}
	}
	for _, name := range sortedKeys(cfg.Briefings) {
		b := cfg.Briefings[name]
		check("briefings."+name+".template", b.Audience, b.Template, b.Channels)
	}
	for _, name := range sortedKeys(cfg.Alerts) {
		r := cfg.Alerts[name]
		for _, on := range r.On {
			check("alerts."+name+".template", r.Audience, alertEvent(r, on), r.Channels)
		}
	}
	return errs
}

// openApp loads the config, opens the store, syncs the config's
// subscribers into it and builds channels, planner and dispatcher.
func openApp(ctx context.Context, path string, e *env) (*app, error) {
	cfg, tmpl, err := loadConfig(path, e)
	if err != nil {
		return nil, err
	}
	return buildApp(ctx, cfg, tmpl, e)
}

// buildApp builds everything from a loaded config.
func buildApp(ctx context.Context, cfg *config.Config, tmpl *templates.Set, e *env) (*app, error) {
	log := newLogger(cfg.Log, e.stderr)
	st, err := store.OpenURL(ctx, cfg.DatabaseURL().Reveal(), store.WithClock(e.now))
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, st: st, tmpl: tmpl, log: log, chans: map[string]channels.Channel{}, env: e, schedule: map[string]string{}}
	kinds := map[string]channels.Kind{}
	rules := map[string]dispatch.ChannelRules{}
	a.metrics = newMetrics(cfg, st, e, log)
	a.acks = a.ackSigner()
	a.disp = dispatch.New(st, dispatch.Options{Retry: cfg.Retry, Now: e.now, Log: log, Observer: a.metrics,
		Holder: processHolder(), Dead: deadHolder})
	for _, name := range cfg.ChannelNames() {
		ch, err := a.buildChannel(name, cfg.Channels[name])
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("channels.%s: %w", name, err)
		}
		a.chans[name] = ch
		kinds[name] = ch.Kind()
		c := cfg.Channels[name]
		r := dispatch.ChannelRules{MaxMarking: incidents.Marking(c.MaxMarking), MaxSegments: c.MaxSegments}
		if c.PerSubscriber != nil {
			r.CapMax, r.CapWindow = c.PerSubscriber.Max, c.PerSubscriber.Window
		}
		rules[name] = r
		a.disp.AddChannel(a.withAckButtons(ch), cfg.Channels[name].Limits)
	}
	var auds []dispatch.Audience
	for name, aud := range cfg.Audiences {
		auds = append(auds, dispatch.Audience{Name: name, Selector: aud.Selector})
	}
	a.planner = dispatch.NewPlanner(dispatch.PlannerOptions{Templates: tmpl, Channels: kinds, Audiences: auds, Retry: cfg.Retry, Now: e.now,
		DashboardURL: cfg.Server.PublicURL, Rules: rules, CriticalOverridesOptOut: cfg.SMSReplies.CriticalOverridesOptOut, Observer: a.metrics,
		Acks: a.acks, OnCommit: a.disp.Notify})
	a.esc = dispatch.NewEscalator(st, a.planner, dispatch.EscalatorOptions{Log: log})
	a.sched = scheduler.New(st, briefer{a}, scheduler.Options{Grace: cfg.Schedule.Grace, Now: e.now, Log: log})
	for _, name := range sortedKeys(cfg.Briefings) {
		if spec := cfg.Briefings[name].Schedule; spec != "" {
			if err := a.sched.Add(name, spec); err != nil {
				a.Close()
				return nil, err
			}
			a.schedule[name] = spec
		}
	}
	// Only a config that built completely changes the database: a bad one
	// changes nothing (its subscribers are synced last).
	if err := a.syncSubscribers(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// buildChannel is the one place that maps a driver name to a package.
func (a *app) buildChannel(name string, c *config.Channel) (channels.Channel, error) {
	switch c.Driver {
	case "sandbox":
		return sandbox.New(name, *c.Sandbox)
	case "twilio":
		return twilio.New(name, a.twilioConfig(*c.Twilio), a.env.twilioOpts...)
	case "smtp":
		// The store is open: Message-IDs are unique to its installation.
		s, err := email.New(name, *c.SMTP, append([]email.Option{email.WithInstallation(a.st.Installation())}, a.env.emailOpts...)...)
		if err == nil {
			a.closers = append(a.closers, s)
		}
		return s, err
	case "slack":
		return slack.New(name, *c.Slack, append([]slack.Option{slack.WithLogger(a.log)}, a.env.slackOpts...)...)
	}
	return nil, fmt.Errorf("unknown driver %q", c.Driver)
}

// twilioConfig points a Twilio channel without a status_callback_url at
// crier's own status webhook, so every message's receipts come back to its
// delivery. That needs the webhook served (webhooks.twilio_auth_token) and
// an https server.public_url (Twilio must reach it; the channel refuses
// plain-http callbacks).
func (a *app) twilioConfig(c twilio.Config) twilio.Config {
	base := strings.TrimRight(a.cfg.Server.PublicURL, "/")
	if c.StatusCallbackURL == "" && a.cfg.Webhooks.TwilioAuthToken.IsSet() && strings.HasPrefix(base, "https://") {
		c.StatusCallbackURL = base + server.TwilioStatusPath
	}
	return c
}

// syncSubscribers makes the database's config-sourced subscribers match
// the config file: added, changed and removed in one transaction.
func (a *app) syncSubscribers(ctx context.Context) error {
	people := a.cfg.People()
	ids := make([]string, len(people))
	for i := range people {
		ids[i] = people[i].ID
	}
	return a.st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.UpsertSubscribers(people, "config"); err != nil {
			return err
		}
		_, err := tx.RemoveSubscribersNotIn("config", ids)
		return err
	})
}

// Close releases channels and the store.
func (a *app) Close() error {
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c.Close())
	}
	if a.st != nil {
		errs = append(errs, a.st.Close())
	}
	return errors.Join(errs...)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: maskAttr}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maskAttr keeps phone numbers and email addresses out of logs.
func maskAttr(_ []string, at slog.Attr) slog.Attr {
	switch at.Key {
	case "address", "to", "phone", "email":
		at.Value = slog.StringValue(maskAddress(at.Value.String()))
	default:
		at.Value = maskInText(at.Value) // a provider's error names the address
	}
	return at
}

func maskAddress(s string) string {
	if i := strings.IndexByte(s, '@'); i > 0 {
		return s[:1] + "***" + s[i:]
	}
	if len(s) > 4 {
		return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
	}
	return s
}
