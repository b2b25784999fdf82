// Package dispatch turns triggers into deliveries and deliveries into
// sends. Plan writes every delivery to SQLite before it can be sent (a
// large trigger a chunk at a time, resumable after a crash); the
// Dispatcher claims due deliveries with a lease,
// paces them per channel, sends each once, classifies the outcome and
// records it. It is the only place in crier that retries.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// InDoubt policies: what to do with a delivery that was being sent when
// the process died, so nobody knows whether the provider got it.
const (
	// InDoubtResend sends it again (at-least-once). Right where the
	// receiver can recognise a duplicate (email Message-ID) or a duplicate
	// is harmless.
	InDoubtResend = "resend"
	// InDoubtHold marks it unknown and leaves it for an operator
	// (at-most-once): `crier retry` sends it again after a check.
	InDoubtHold = "hold"
)

// Limits are one channel instance's pacing settings.
type Limits struct {
	// Concurrency is how many sends may be in flight at once (default 4).
	Concurrency int `yaml:"concurrency"`
	// Rate is the most sends per second (for SMS: segments per second);
	// 0 means no limit.
	Rate float64 `yaml:"rate"`
	// Burst is how many sends (segments) may go at once above Rate
	// (default: max(1, Rate)).
	Burst int `yaml:"burst"`
	// InDoubt is resend or hold (default: hold for sms, resend otherwise).
	InDoubt string `yaml:"in_doubt"`
}

// Validate reports every problem with l.
func (l Limits) Validate() fields.List {
	var errs fields.List
	if l.Concurrency < 0 || l.Concurrency > 256 {
		errs.Add("concurrency", fmt.Sprint(l.Concurrency), "must be between 1 and 256")
	}
	if l.Rate < 0 {
		errs.Add("rate", fmt.Sprint(l.Rate), "must not be negative (0 means no limit)")
	}
	if l.Burst < 0 {
		errs.Add("burst", fmt.Sprint(l.Burst), "must not be negative")
	}
	if l.InDoubt != "" && l.InDoubt != InDoubtResend && l.InDoubt != InDoubtHold {
		errs.Add("in_doubt", l.InDoubt, "must be resend or hold")
	}
	return errs
}

// Pacer is implemented by channels that limit sends per destination (Slack
// allows about one message a second per channel). The dispatcher waits on
// it before each Send.
type Pacer interface {
	Wait(ctx context.Context, m channels.Message) error
}

// Observer hears about every recorded outcome (metrics).
type Observer interface {
	Observed(channel string, kind channels.Kind, status, reason string, latency time.Duration)
}

// Options configure a Dispatcher.
type Options struct {
	Retry RetryPolicy
	// Lease is how long a claimed delivery stays ours (default 5m). It
	// must be longer than any send takes.
	Lease time.Duration
	// Poll is how often an idle channel looks for due deliveries (default 250ms).
	Poll time.Duration
	// Grace bounds how long in-flight sends may take to finish after a
	// stop (default 10s).
	Grace time.Duration
	// Now is the clock (tests pass a fake one); Rand the jitter source.
	Now  func() time.Time
	Rand func(int64) int64
	Log  *slog.Logger
	// Observer, if set, hears about every outcome (and, if it is a
	// LaneObserver, about channels pausing and resuming and about which
	// rate-limited channels this process sends).
	Observer Observer
	// Hold, if set, is how a lane whose pace must hold for every process
	// on the database (a rate, or Slack's pace per destination) waits to
	// be the one that sends the channel: it returns when this process
	// holds role, with a channel closed when the role is lost and a
	// function that gives it up (see package cluster). Without it every
	// lane sends: one process on the database.
	Hold func(ctx context.Context, role string) (lost <-chan struct{}, release func(), err error)
	// Holder names this process in the claims it makes (default: a
	// random name). Its heartbeat keeps them its own while it runs.
	Holder string
	// Dead, if set, reports whether the holder of other claims is known
	// to be dead before its heartbeat runs out (a process on this host
	// that no longer exists): its claims are recovered at once.
	Dead func(holder string) bool
	// Heartbeat is how long this process's heartbeat lasts (default
	// 15s); it is renewed every third of that. Another process recovers
	// its claims once it has run out.
	Heartbeat time.Duration
	// ReconcileFirst is how long after an in-doubt request crier first
	// asks a channel that can reconcile whether its provider has the
	// message, and then how often (default: an eighth of
	// Retry.ReconcileAfter, at most 15s).
	ReconcileFirst time.Duration
}

// Dispatcher sends queued deliveries through their channels.
type Dispatcher struct {
	st    Outbox
	opts  Options
	lanes map[string]*lane
	order []string
	// wake is closed (and replaced) by Notify: every idle worker looks.
	wakeMu sync.Mutex
	wake   chan struct{}
	// running counts Run calls in progress (for /readyz).
	running atomic.Int32
	holder  string
}

type lane struct {
	ch      channels.Channel
	limits  Limits
	limiter *rate.Limiter
	window  *window // with limiter: at most the rate in any second
	br      *breaker
	// serial: deliveries about one incident to one place go one at a
	// time (threads); segmented: the rate counts SMS segments.
	serial, segmented bool
	// idle: the last claim found nothing due.
	idle atomic.Bool
}

// New builds a dispatcher over st. Add channels with AddChannel before Run.
func New(st Outbox, o Options) *Dispatcher {
	o.Retry.Defaults()
	if o.Lease == 0 {
		o.Lease = 5 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Grace == 0 {
		o.Grace = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Holder == "" {
		o.Holder = "crier " + randomName()
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.ReconcileFirst == 0 {
		o.ReconcileFirst = min(15*time.Second, o.Retry.ReconcileAfter/8)
	}
	return &Dispatcher{st: st, opts: o, lanes: map[string]*lane{}, wake: make(chan struct{}), holder: o.Holder}
}

// randomName is 8 random hex digits.
func randomName() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}

// SetHold sets Options.Hold (crier serve, once it has joined the
// cluster). Call it before Run.
func (d *Dispatcher) SetHold(hold func(ctx context.Context, role string) (<-chan struct{}, func(), error)) {
	d.opts.Hold = hold
}

// Holder is the name this dispatcher's claims carry.
func (d *Dispatcher) Holder() string { return d.holder }

// AddChannel registers a channel instance with its limits.
func (d *Dispatcher) AddChannel(ch channels.Channel, l Limits) {
	if l.Concurrency <= 0 {
		l.Concurrency = 4
	}
	if l.InDoubt == "" {
		l.InDoubt = InDoubtResend
		if ch.Kind() == channels.KindSMS {
			l.InDoubt = InDoubtHold
		}
	}
	var lobs LaneObserver
	if o, ok := d.opts.Observer.(LaneObserver); ok {
		lobs = o
	}
	ln := &lane{ch: ch, limits: l, br: newBreaker(ch.Name(), d.opts.Retry, d.opts.Log, lobs),
		serial: ch.Kind() == channels.KindSlack, segmented: ch.Kind() == channels.KindSMS}
	if l.Rate > 0 {
		burst := l.Burst
		if burst <= 0 {
			burst = max(1, int(l.Rate))
		}
		ln.limiter = rate.NewLimiter(rate.Limit(l.Rate), burst)
		ln.window = newWindow(l.Rate, l.Burst)
	}
	d.lanes[ch.Name()] = ln
	d.order = append(d.order, ch.Name())
}

// Channel returns the registered channel with that name.
func (d *Dispatcher) Channel(name string) (channels.Channel, bool) {
	ln, ok := d.lanes[name]
	if !ok {
		return nil, false
	}
	return ln.ch, true
}

// Notify tells idle lanes that new deliveries were planned, so they look
// at once instead of at the next poll.
func (d *Dispatcher) Notify() {
	d.wakeMu.Lock()
	close(d.wake)
	d.wake = make(chan struct{})
	d.wakeMu.Unlock()
}

// wakeChan is closed at the next Notify.
func (d *Dispatcher) wakeChan() <-chan struct{} {
	d.wakeMu.Lock()
	defer d.wakeMu.Unlock()
	return d.wake
}

// Recover gives up the claims of processes that are gone (their
// heartbeat ran out, or Options.Dead says so) and claims whose lease ran
// out: deliveries never attempted go back to the queue as they were;
// those whose provider request had started are in doubt and follow each
// channel's in-doubt policy. It also expires overdue deliveries. Run
// calls it at once and then every few seconds.
func (d *Dispatcher) Recover(ctx context.Context) error {
	for _, name := range d.order {
		ln := d.lanes[name]
		o := store.Orphans{Channel: name, Resend: ln.limits.InDoubt == InDoubtResend, Self: d.holder, Dead: d.opts.Dead}
		if _, ok := ln.ch.(channels.Reconciler); ok && !o.Resend {
			o.Detail = "crier asks the provider whether it has it"
		}
		rec, err := d.st.ReleaseOrphans(ctx, o)
		if err != nil {
			return err
		}
		if rec.Released > 0 {
			d.opts.Log.Info("claims of a stopped crier process released: never attempted, queued again", "channel", name, "count", rec.Released)
		}
		if rec.InDoubt > 0 {
			d.opts.Log.Warn("deliveries were being sent when a crier process stopped: in doubt", "channel", name, "count", rec.InDoubt, "policy", ln.limits.InDoubt)
		}
	}
	n, err := d.st.ExpireOverdue(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		d.opts.Log.Warn("deliveries expired: their deadline passed while queued", "count", n)
	}
	return nil
}

// Run sends due deliveries on every channel until ctx is done, then lets
// in-flight sends finish (bounded by Options.Grace), puts claimed but
// unsent deliveries back in the queue and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.running.Add(1)
	defer d.running.Add(-1)
	return d.run(ctx, nil)
}

// Running reports whether Run is sending (for /readyz): false before it
// starts and once it has returned.
func (d *Dispatcher) Running() bool { return d.running.Load() > 0 }

// Drain sends the deliveries of the given triggers until none is queued or
// sending, ctx ends, or only retries later than deadline remain. progress,
// if set, is called about twice a second with the counts per status.
func (d *Dispatcher) Drain(ctx context.Context, triggerIDs []int64, until time.Time, progress func(map[string]int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx, triggerIDs) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	check := func() (bool, error) {
		by, err := d.st.PendingByChannel(ctx, triggerIDs)
		if err != nil {
			return false, err
		}
		if progress != nil {
			if c, err := d.st.Counts(ctx, triggerIDs); err == nil {
				progress(c)
			}
		}
		if len(by) == 0 {
			return true, nil
		}
		if until.IsZero() {
			return false, nil
		}
		// Over when nothing can go before until: each channel's next
		// attempt, or the end of its pause if it is paused, is later.
		now := d.opts.Now()
		for ch, p := range by {
			next := p.Next
			if ln, ok := d.lanes[ch]; ok {
				if wait := ln.br.pausedFor(now); wait > 0 && now.Add(wait).After(next) {
					next = now.Add(wait)
				}
			}
			if next.IsZero() || !next.After(until) {
				return false, nil
			}
		}
		return d.inFlight(ctx, triggerIDs) == 0, nil
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			return err
		case <-tick.C:
			over, err := check()
			if err != nil {
				cancel()
				<-done
				return err
			}
			if over || (!until.IsZero() && d.opts.Now().After(until)) {
				cancel()
				<-done
				if progress != nil {
					if c, err := d.st.Counts(context.Background(), triggerIDs); err == nil {
						progress(c)
					}
				}
				return nil
			}
		}
	}
}

// inFlight counts the given triggers' deliveries some process holds:
// claimed and not yet recorded.
func (d *Dispatcher) inFlight(ctx context.Context, triggerIDs []int64) int {
	n, err := d.st.InHand(ctx, triggerIDs)
	if err != nil {
		return 1
	}
	return n
}

// recoverLoop runs Recover every few seconds until ctx ends: the claims
// of a process that died come back once its heartbeat has run out.
func (d *Dispatcher) recoverLoop(ctx context.Context) {
	every(ctx, d.recoverEvery(), func() {
		if err := d.Recover(ctx); err != nil && ctx.Err() == nil {
			d.opts.Log.Error("recover the claims of stopped processes", "err", err)
		}
		d.Notify()
	})
}

// every runs fn every period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func (d *Dispatcher) recoverEvery() time.Duration {
	return max(time.Second, min(d.opts.Lease/2, d.opts.Heartbeat/3))
}

// heartbeat keeps this process's claims its own while ctx lasts, and
// removes its heartbeat when it ends (everything it held is recorded by
// then).
func (d *Dispatcher) heartbeat(ctx context.Context) {
	every(ctx, d.opts.Heartbeat/3, func() {
		if err := d.st.NodeHeartbeat(ctx, d.holder, d.opts.Heartbeat); err != nil && ctx.Err() == nil {
			d.opts.Log.Error("heartbeat", "err", err)
		}
	})
}

// run drives every lane (only the given triggers' deliveries, when set) and
// the recorder until ctx ends.
func (d *Dispatcher) run(ctx context.Context, triggerIDs []int64) error {
	// The heartbeat is on record before the first claim, so no other
	// process takes this one's claims for a dead process's.
	if err := d.st.NodeHeartbeat(ctx, d.holder, d.opts.Heartbeat); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return err
	}
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); d.heartbeat(hbCtx) }()
	defer func() {
		stopHB()
		<-hbDone
		_ = d.st.NodeGone(context.WithoutCancel(ctx), d.holder)
	}()
	rec := newRecorder(d.st, d.opts.Log)
	recDone := make(chan error, 1)
	go func() { recDone <- rec.run() }()
	var wg sync.WaitGroup
	for _, name := range d.order {
		wg.Add(1)
		go func(ln *lane) {
			defer wg.Done()
			d.runLane(ctx, ln, triggerIDs, rec)
		}(d.lanes[name])
	}
	if triggerIDs == nil {
		// A long-running dispatcher keeps recovering: the claims of a
		// process that died come back once its heartbeat runs out, even
		// if this process started before it did; and it reconciles
		// in-doubt messages with providers that can say what they have.
		wg.Add(2)
		go func() {
			defer wg.Done()
			d.recoverLoop(ctx)
		}()
		go func() {
			defer wg.Done()
			d.reconcileLoop(ctx)
		}()
	}
	wg.Wait()
	rec.close()
	err := <-recDone
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
