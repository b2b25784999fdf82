package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/internal/cluster"
	"github.com/crier-dev/crier/server"
)

func serveCmd(e *env) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run crier: deliver queued messages, fire scheduled briefings, serve the API",
		Long: `Run crier until SIGTERM or Ctrl-C. On start it resumes every queued delivery, handles deliveries that
were in flight when crier last stopped by each channel's in_doubt policy (resend or hold as unknown),
and fires briefings missed while it was down (within schedule.grace, marked late). On SIGTERM it stops
claiming, lets in-flight sends finish (bounded), and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				if listen != "" {
					a.cfg.Server.Listen = listen
				}
				return a.serve(ctx)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (overrides server.listen)")
	return cmd
}

// serve runs the dispatcher, the scheduler and the HTTP server until ctx ends.
func (a *app) serve(ctx context.Context) error {
	holder := hostHolder()
	if !a.st.Clustered() {
		if other, alive, err := a.st.Alive(ctx, "server"); err != nil {
			return err
		} else if alive && !deadHolder(other) {
			return fmt.Errorf("another crier serve (%s) is running on %s: run one server per SQLite file (several servers share a PostgreSQL database: see database.url)", other, a.st.Path())
		}
	}
	if err := a.st.Heartbeat(ctx, "server", holder, 10*time.Second); err != nil {
		return err
	}
	if !a.st.Clustered() {
		// On a shared database another server's heartbeat may be the
		// latest: it runs out on its own instead.
		defer a.st.ReleaseHeartbeat(context.WithoutCancel(ctx), "server", holder)
	}
	if err := a.disp.Recover(ctx); err != nil {
		return err
	}
	// This process's roles in the cluster (on SQLite it is the cluster):
	// the scheduler, and each channel whose pace holds for every process.
	member := cluster.New(func(ctx context.Context) (cluster.Locks, error) { return a.st.Locks(ctx) }, 3*time.Second, a.log)
	if a.st.Clustered() {
		a.disp.SetHold(member.Hold)
	}
	ln, err := net.Listen("tcp", a.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen %s: %w", a.cfg.Server.Listen, err)
	}
	var tokens []server.Token
	for _, t := range a.cfg.Server.Tokens {
		tokens = append(tokens, server.Token{Name: t.Name, Role: t.Role, Value: t.Token})
	}
	escWake := make(chan struct{}, 1)
	var api *server.Server // the dashboard asks it who signed in
	dash, err := a.newDashboard(func(r *http.Request) (server.Principal, bool) { return api.Principal(r) })
	if err != nil {
		ln.Close()
		return err
	}
	auth := a.authOptions()
	auth.SigninPage = signinPage(dash)
	api = server.New(server.Options{Incidents: a, Store: a.st, Tokens: tokens, Log: a.log, Notify: a.disp.Notify, Preflight: a,
		Acks: a.ackOptions(escWake), Auth: auth,
		Broadcasts: a, Subscribers: a, Schedules: a, Dashboard: dashboardPages(dash),
		Twilio: wakeOnReceipt(a.twilioWebhooks(), escWake), Metrics: a.metrics.Handler(), WebhookObserved: a.metrics.WebhookObserved, Ready: a.ready,
		ReadyDetail: a.readyDetail})
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	srv.RegisterOnShutdown(dash.Close) // live progress streams end, so shutdown need not wait for them

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(6)
	go func() { defer wg.Done(); member.Run(runCtx) }()
	go func() { defer wg.Done(); a.lead(runCtx, member, escWake) }()
	go func() {
		defer wg.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			a.resumePlans(runCtx)
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer wg.Done()
		if err := a.disp.Run(runCtx); err != nil {
			errc <- fmt.Errorf("dispatcher: %w", err)
			stop()
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			stop()
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if err := a.st.Heartbeat(runCtx, "server", holder, 10*time.Second); err != nil && runCtx.Err() == nil {
					a.log.Error("heartbeat", "err", err)
				}
			}
		}
	}()
	a.log.Info("crier serving", "listen", ln.Addr().String(), "database", a.st.Path(), "engine", a.st.Engine(), "node", a.disp.Holder(),
		"channels", len(a.chans), "briefings", len(a.schedule))
	if a.env.gc.GCFrom != "" {
		a.log.Info("garbage collector", "settings", a.env.gc.String())
	}
	fmt.Fprintf(a.env.stderr, "crier serving on http://%s (database %s); Ctrl-C to stop\n", ln.Addr(), a.st.Path())

	<-runCtx.Done()
	a.log.Info("crier stopping: no new claims; waiting for in-flight sends")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	a.log.Info("crier stopped cleanly")
	return nil
}

// lead runs the scheduler, its catch-up, the missed-briefing alarm and
// the escalator while this process holds the cluster's scheduler role:
// one process at a time does, and when it dies or loses its database
// session another takes over within seconds. Each occurrence of a
// briefing is recorded before it fires, so a short overlap fires nothing
// twice.
func (a *app) lead(ctx context.Context, member *cluster.Member, escWake <-chan struct{}) {
	for ctx.Err() == nil {
		lost, release, err := member.Hold(ctx, "scheduler")
		if err != nil {
			return
		}
		a.leading.Store(true)
		a.metrics.Leader(true)
		a.log.Info("this process runs the scheduler, catch-up, the missed-briefing alarm and escalation")
		leadCtx, stop := context.WithCancel(ctx)
		if err := a.sched.CatchUp(leadCtx); err != nil && leadCtx.Err() == nil {
			a.log.Error("catching up missed briefings", "err", err)
		}
		a.sched.Start(leadCtx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a.escalateLoop(leadCtx, escWake) }()
		go func() {
			defer wg.Done()
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				if err := a.sched.CheckAlarms(leadCtx, a.st, a, a.watches()); err != nil && leadCtx.Err() == nil {
					a.log.Error("missed-briefing check", "err", err)
				}
				select {
				case <-leadCtx.Done():
					return
				case <-t.C:
				}
			}
		}()
		select {
		case <-lost:
			a.log.Warn("lost the scheduler to another process (the database session broke): stopping it here")
		case <-ctx.Done():
		}
		stop()
		a.sched.Stop()
		wg.Wait()
		a.leading.Store(false)
		a.metrics.Leader(false)
		release()
	}
}

// twilioWebhooks configures Twilio's status and inbound-SMS webhooks, or
// nil (not served) without webhooks.twilio_auth_token.
func (a *app) twilioWebhooks() *server.TwilioOptions {
	w, r := a.cfg.Webhooks, a.cfg.SMSReplies
	if !w.TwilioAuthToken.IsSet() {
		return nil
	}
	return &server.TwilioOptions{AuthToken: w.TwilioAuthToken, PublicURL: a.cfg.Server.PublicURL, Store: a.st,
		Replies: server.SMSReplies{HelpText: r.HelpText, UnknownText: r.UnknownText, AckDigit: r.AckDigit}}
}

// resumePlans finishes plans a process left part-way (it died while
// committing a large broadcast chunk by chunk).
func (a *app) resumePlans(ctx context.Context) {
	n, err := a.planner.ResumePlans(ctx, a.st)
	if err != nil && ctx.Err() == nil {
		a.log.Error("finishing plans left part-way", "err", err)
	}
	if n > 0 {
		a.log.Warn("finished plans a stopped process left part-way", "count", n)
		a.disp.Notify()
	}
}
