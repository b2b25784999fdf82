package main

import (
	"errors"
	"log/slog"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/metrics"
	"github.com/crier-dev/crier/store"
)

// newMetrics builds the metrics of one app: every configured channel and
// scheduled briefing is known up front, and queue ages use the app's clock
// (the store's).
func newMetrics(cfg *config.Config, st *store.Store, e *env, log *slog.Logger) *metrics.Metrics {
	kinds := map[string]channels.Kind{}
	for _, name := range cfg.ChannelNames() {
		kinds[name] = cfg.Channels[name].Kind()
	}
	var briefings []string
	for _, name := range sortedKeys(cfg.Briefings) {
		if cfg.Briefings[name].Schedule != "" {
			briefings = append(briefings, name)
		}
	}
	return metrics.New(metrics.Options{Store: st, Channels: kinds, Briefings: briefings, Now: e.now, Log: log})
}

// ready is /readyz's check beyond the database: crier serve is ready when
// its scheduler and its dispatcher both run. Every failing part is named.
func (a *app) ready() error {
	var errs []error
	switch {
	case a.leading.Load() && !a.sched.Running():
		errs = append(errs, errors.New("scheduler not running"))
	case !a.leading.Load() && !a.st.Clustered():
		// On its own database this process must run the scheduler.
		errs = append(errs, errors.New("scheduler not running"))
	}
	if !a.disp.Running() {
		errs = append(errs, errors.New("dispatcher not running"))
	}
	return errors.Join(errs...)
}

// readyDetail says, in a ready answer, which process runs the scheduler.
func (a *app) readyDetail() string {
	if a.leading.Load() {
		return "scheduler: this process (" + a.disp.Holder() + ")\n"
	}
	return "scheduler: another process; this one stands by to take over\n"
}
