package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
)

// runLane sends one channel's deliveries until ctx is done, with the
// channel's concurrency of workers. Each worker claims exactly what it is
// about to send (one message, or one batch for a channel that sends in
// batches), marked sending in the same commit, sends it and hands the
// outcome to the recorder; nothing is claimed ahead of being sent. After
// a stop, sends in flight get Options.Grace to finish.
//
// A lane whose pace must hold across every process on the database (a
// rate, or a pace per destination) sends only while this process holds
// the channel's role (Options.Hold): one process at a time sends it, so
// the pace is the cluster's; when that process dies another takes the
// role over.
func (d *Dispatcher) runLane(ctx context.Context, ln *lane, triggerIDs []int64, rec *recorder) {
	_, paced := ln.ch.(Pacer)
	if d.opts.Hold == nil || (ln.limiter == nil && !paced) {
		d.runWorkers(ctx, ln, triggerIDs, rec)
		return
	}
	role := "channel:" + ln.ch.Name()
	for ctx.Err() == nil {
		lost, release, err := d.opts.Hold(ctx, role)
		if err != nil {
			return
		}
		d.opts.Log.Info("this process sends the channel (its pace holds for every crier process on the database)", "channel", ln.ch.Name())
		d.owner(ln, true)
		owned, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				d.opts.Log.Warn("lost the channel to another process: stopping its sends", "channel", ln.ch.Name())
			case <-owned.Done():
			}
			stop()
		}()
		d.runWorkers(owned, ln, triggerIDs, rec)
		stop()
		// Everything this process sent on the channel is on record
		// before another process may take it over.
		rec.flushWait()
		release()
		d.owner(ln, false)
	}
}

// owner tells a LaneObserver whether this process sends the lane.
func (d *Dispatcher) owner(ln *lane, owns bool) {
	if o, ok := d.opts.Observer.(OwnerObserver); ok {
		o.LaneOwner(ln.ch.Name(), owns)
	}
}

// pace waits for n units of the lane's token bucket (before the claim:
// the bucket spreads sends and allows the burst).
func (ln *lane) pace(ctx context.Context, n int) error {
	return ln.limiter.WaitN(ctx, n)
}

// units is what a delivery counts against its lane's rate: an SMS's
// segments, one for anything else.
func (ln *lane) units(c store.Claimed) int {
	if ln.segmented && c.Segments > 1 {
		return c.Segments
	}
	return 1
}

// admit waits, immediately before a send, until n units fit the lane's
// window: no second carries more than the rate, counted as close to the
// request as crier can.
func (ln *lane) admit(ctx context.Context, n int) error {
	if ln.window == nil {
		return nil
	}
	return ln.window.WaitN(ctx, n)
}

// OwnerObserver hears whether this process is the one sending a channel
// whose pace holds for every process on the database (metrics).
type OwnerObserver interface {
	LaneOwner(channel string, owner bool)
}

// runWorkers runs the lane's workers until ctx is done.
func (d *Dispatcher) runWorkers(ctx context.Context, ln *lane, triggerIDs []int64, rec *recorder) {
	// Sends get their own context: a stop lets them finish within Grace.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	var wg sync.WaitGroup
	for range ln.limits.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx, sendCtx, ln, triggerIDs, rec)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	select {
	case <-done:
	case <-time.After(d.opts.Grace):
		cancelSends()
		<-done
	}
}

// work is one of a lane's workers.
func (d *Dispatcher) work(ctx, sendCtx context.Context, ln *lane, triggerIDs []int64, rec *recorder) {
	bs, batching := ln.ch.(channels.BatchSender)
	for ctx.Err() == nil {
		if wait := ln.br.pausedFor(d.opts.Now()); wait > 0 {
			if !sleep(ctx, min(wait, time.Second)) {
				return
			}
			continue
		}
		wake := d.wakeChan()
		if ln.idle.Load() || ln.limiter != nil {
			// Nothing was due at the last claim, or a claim would take a
			// rate-limit token: look with a read first, so an idle lane
			// takes no write and no token.
			due, err := d.st.Due(ctx, ln.ch.Name(), triggerIDs)
			if err != nil || !due {
				if err != nil && ctx.Err() == nil {
					d.opts.Log.Error("look for due deliveries", "channel", ln.ch.Name(), "err", err)
				}
				select {
				case <-ctx.Done():
				case <-wake:
				case <-time.After(d.opts.Poll):
				}
				continue
			}
			ln.idle.Store(false)
		}
		n := 1
		if batching {
			n = maxSendBatch
		}
		probe, changed := ln.br.probing()
		if probe {
			if !ln.br.takeProbe() {
				// Another worker is testing the channel: wait for its outcome.
				select {
				case <-ctx.Done():
				case <-changed:
				case <-time.After(probeWait):
				}
				continue
			}
			n = 1
		}
		if ln.limiter != nil {
			n = min(n, ln.limiter.Burst()) // no burst above the configured one
			if err := ln.pace(ctx, n); err != nil {
				if probe {
					ln.br.probeDone()
				}
				return
			}
		}
		cs, err := rec.claim(store.ClaimOptions{Channel: ln.ch.Name(), Limit: n, Lease: d.opts.Lease, Serial: ln.serial,
			TriggerIDs: triggerIDs, Holder: d.holder, Send: true})
		switch {
		case err != nil:
			if ctx.Err() == nil {
				d.opts.Log.Error("claim deliveries", "channel", ln.ch.Name(), "err", err)
				sleep(ctx, time.Second)
			}
		case len(cs) == 0:
			ln.idle.Store(true)
		case batching:
			d.sendBatch(ctx, sendCtx, ln, bs, cs, rec)
		default:
			for _, c := range cs {
				rec.add(d.send(ctx, sendCtx, ln, c))
			}
		}
		if probe {
			ln.br.probeDone()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// probeWait is how long a probing lane waits for its test message's
// outcome before it tests with another (a send that hangs).
const probeWait = 5 * time.Second

// maxSendBatch is the most messages a worker hands a BatchSender at once.
const maxSendBatch = 16

// stopped gives a delivery back to the queue, unsent, with its attempt
// given back: crier stopped before its turn.
func (d *Dispatcher) stopped(c store.Claimed) store.Result {
	return store.Result{ID: c.ID, Status: store.StatusQueued, Reason: "stopped", Detail: "crier stopped before sending it; queued again, not attempted",
		NextAt: d.opts.Now(), Uncount: true, Holder: c.Holder}
}

// send paces, sends and classifies one claimed delivery.
func (d *Dispatcher) send(ctx, sendCtx context.Context, ln *lane, c store.Claimed) store.Result {
	m, r, ok := d.pace(ctx, ln, c)
	if !ok {
		return r
	}
	if err := ln.admit(ctx, ln.units(c)); err != nil {
		return d.stopped(c)
	}
	// Latency is a real duration, whatever clock the dispatcher is given.
	start := time.Now()
	rcpt, err := ln.ch.Send(sendCtx, m)
	return d.observe(ln, d.outcome(ln, c, rcpt, err), time.Since(start))
}

// sendBatch paces each claimed delivery, sends those still due in one
// batch and records every outcome. Each message's latency is the batch's:
// the time from handing it over to knowing its outcome, at most.
func (d *Dispatcher) sendBatch(ctx, sendCtx context.Context, ln *lane, bs channels.BatchSender, cs []store.Claimed, rec *recorder) {
	ready := make([]store.Claimed, 0, len(cs))
	msgs := make([]channels.Message, 0, len(cs))
	for _, c := range cs {
		m, r, ok := d.pace(ctx, ln, c)
		if !ok {
			rec.add(r)
			continue
		}
		ready, msgs = append(ready, c), append(msgs, m)
	}
	if len(msgs) == 0 {
		return
	}
	units := 0
	for _, c := range ready {
		units += ln.units(c)
	}
	if err := ln.admit(ctx, units); err != nil {
		for _, c := range ready {
			rec.add(d.stopped(c))
		}
		return
	}
	start := time.Now()
	res := bs.SendBatch(sendCtx, msgs)
	latency := time.Since(start)
	for i, c := range ready {
		var out channels.Result
		if i < len(res) {
			out = res[i]
		} else {
			// The channel may have sent it: in doubt, like a lost reply.
			out.Err = channels.InDoubt(channels.ReasonUnknown, "", 0, fmt.Errorf("%s: no result for this message in its batch", ln.ch.Name()))
		}
		rec.add(d.observe(ln, d.outcome(ln, c, out.Receipt, out.Err), latency))
	}
}

// pace builds c's message and waits for the channel's pacing beyond the
// one rate-limit token its claim took (an SMS's further segments, Slack's
// pace per destination). ok is false when c must not be sent now; r then
// says what becomes of it (given back to the queue, or expired), with its
// attempt given back.
func (d *Dispatcher) pace(ctx context.Context, ln *lane, c store.Claimed) (m channels.Message, r store.Result, ok bool) {
	m = channels.Message{DeliveryID: c.ID, Key: c.Key, Address: c.Address, Subject: c.Subject, Text: c.Text, HTML: c.HTML,
		IncidentID: c.IncidentID, Thread: c.Thread, Metadata: map[string]string{"delivery_id": strconv.FormatInt(c.ID, 10), "trigger": c.TriggerKey}}
	if c.IncidentID != "" {
		m.Metadata["incident_id"] = c.IncidentID
		m.ThreadSummary = fmt.Sprintf("%s %s: %s (%s)", strings.ToUpper(c.IncidentSeverity), c.IncidentID, c.IncidentTitle, c.IncidentStatus)
	}
	if ctx.Err() != nil {
		return m, d.stopped(c), false
	}
	if r, skip := d.skip(ln, c); skip {
		return m, r, false
	}
	if ln.limiter != nil && ln.segmented && c.Segments > 1 {
		if err := ln.pace(ctx, min(c.Segments, ln.limiter.Burst())-1); err != nil {
			return m, d.stopped(c), false
		}
	}
	if p, ok := ln.ch.(Pacer); ok {
		if err := p.Wait(ctx, m); err != nil {
			return m, d.stopped(c), false
		}
	}
	// Pacing may have waited: look again before sending.
	if r, skip := d.skip(ln, c); skip {
		return m, r, false
	}
	return m, store.Result{}, true
}

// observe tells the observer about an outcome and returns it.
func (d *Dispatcher) observe(ln *lane, r store.Result, latency time.Duration) store.Result {
	if d.opts.Observer != nil {
		d.opts.Observer.Observed(ln.ch.Name(), ln.ch.Kind(), r.Status, r.Reason, latency)
	}
	return r
}

// skip decides a claimed delivery without sending it: one whose deadline
// has passed is expired (a briefing is not sent hours late just because
// the queue was long), and one whose channel is paused goes back to the
// queue for when the pause ends. Neither was attempted: the attempt its
// claim counted is given back.
func (d *Dispatcher) skip(ln *lane, c store.Claimed) (store.Result, bool) {
	now := d.opts.Now()
	if !c.Deadline.IsZero() && now.After(c.Deadline) {
		r := store.Result{ID: c.ID, Status: store.StatusExpired, Reason: "deadline", Detail: "deadline passed before it could be sent", Uncount: true, Holder: c.Holder}
		if d.opts.Observer != nil {
			d.opts.Observer.Observed(ln.ch.Name(), ln.ch.Kind(), r.Status, r.Reason, 0)
		}
		return r, true
	}
	if wait := ln.br.pausedFor(now); wait > 0 {
		return store.Result{ID: c.ID, Status: store.StatusQueued, Reason: "paused", Detail: "channel paused; not attempted, queued for when the pause ends",
			NextAt: now.Add(wait), Uncount: true, Holder: c.Holder}, true
	}
	return store.Result{}, false
}

// outcome turns a send's result into the delivery's next state, and tells
// the lane's breaker whether the channel answered.
func (d *Dispatcher) outcome(ln *lane, c store.Claimed, rcpt channels.Receipt, err error) store.Result {
	now := d.opts.Now()
	if err == nil {
		ln.br.succeeded(now)
		r := store.Result{ID: c.ID, Status: store.StatusSent, ProviderID: rcpt.ProviderID, Segments: rcpt.Segments, Detail: rcpt.Status, Holder: c.Holder}
		switch {
		case c.IncidentID == "":
			// Without an incident there is no thread.
		case c.Thread == "":
			// The first message about an incident to this place: later
			// ones thread under it.
			r.Thread = rcpt.Thread
		case rcpt.Thread != "" && rcpt.Thread != c.Thread:
			// The channel started a new thread (its parent was deleted):
			// later messages follow the new one.
			r.Thread, r.OldThread = rcpt.Thread, c.Thread
		}
		return r
	}
	reason, retryable, after := channels.Classify(err)
	detail := err.Error()
	if len(detail) > 500 {
		detail = detail[:500]
	}
	log := d.opts.Log.With("channel", ln.ch.Name(), "delivery", c.ID, "reason", string(reason))
	wide := reason.ChannelWide()
	if !wide && !retryable {
		ln.br.succeeded(now) // the provider answered, about this recipient
		log.Warn("delivery failed permanently", "err", detail)
		return store.Result{ID: c.ID, Status: store.StatusFailed, Reason: string(reason), Detail: detail, OptOut: reason == channels.ReasonOptedOut, Holder: c.Holder}
	}
	if channels.MaybeSent(err) && ln.limits.InDoubt == InDoubtHold {
		// The provider may have the message: a retry could deliver it
		// twice, which this channel's policy forbids. Reconciliation with
		// the provider, or an operator, decides.
		ln.br.failed(now, reason, after, wide, d.opts.Retry.ChannelPause, detail)
		log.Warn("delivery in doubt: not retried (channel policy in_doubt: hold)", "err", detail)
		what := "check the provider, then crier retry " + strconv.FormatInt(c.ID, 10)
		if _, ok := ln.ch.(channels.Reconciler); ok {
			what = "crier asks the provider whether it has it"
		}
		return store.Result{ID: c.ID, Status: store.StatusUnknown, Reason: string(reason), NextAt: now.Add(d.opts.ReconcileFirst),
			Detail: fmt.Sprintf("may have been sent (request started %s); not retried (channel policy in_doubt: hold); %s: %s",
				now.UTC().Format("15:04:05.000 MST"), what, detail), Holder: c.Holder}
	}
	if outage, until := ln.br.failed(now, reason, after, wide, d.opts.Retry.ChannelPause, detail); outage {
		// The channel is down, not the recipient: the attempt is given
		// back and the delivery waits for the channel (within its deadline).
		if !c.Deadline.IsZero() && until.After(c.Deadline) {
			return store.Result{ID: c.ID, Status: store.StatusExpired, Reason: string(reason), Detail: "deadline passed while the channel was paused: " + detail, Holder: c.Holder}
		}
		log.Debug("delivery waits for the channel", "err", detail)
		return store.Result{ID: c.ID, Status: store.StatusQueued, Reason: string(reason), Detail: "channel paused: " + detail, NextAt: until, Uncount: true, Holder: c.Holder}
	}
	if c.Attempts >= d.opts.Retry.MaxAttempts {
		log.Warn("delivery expired: attempts exhausted", "attempts", c.Attempts, "err", detail)
		return store.Result{ID: c.ID, Status: store.StatusExpired, Reason: string(reason), Detail: fmt.Sprintf("gave up after %d attempts: %s", c.Attempts, detail), Holder: c.Holder}
	}
	next := now.Add(d.opts.Retry.Backoff(c.Attempts, after, d.opts.Rand))
	if !c.Deadline.IsZero() && next.After(c.Deadline) {
		log.Warn("delivery expired: deadline", "err", detail)
		return store.Result{ID: c.ID, Status: store.StatusExpired, Reason: string(reason), Detail: "deadline reached: " + detail, Holder: c.Holder}
	}
	log.Info("delivery will be retried", "attempt", c.Attempts, "next_at", next.UTC().Format(time.RFC3339), "err", detail)
	return store.Result{ID: c.ID, Status: store.StatusQueued, Reason: string(reason), Detail: detail, NextAt: next, Holder: c.Holder}
}

// recorder batches results into few transactions: every outcome is
// durable before the lane reports idle, and the writer is not hit once per
// delivery.
type recorder struct {
	st       Outbox
	log      *slog.Logger
	mu       sync.Mutex
	pending  []store.Result
	claims   []*claimReq // waiting for the next round
	claiming bool        // a round is under way
	kick     chan struct{}
	flushed  *sync.Cond
	added    uint64 // results handed in
	written  uint64 // results written
	closed   bool
	waiting  int // flushWait callers
	err      error
}

func newRecorder(st Outbox, log *slog.Logger) *recorder {
	r := &recorder{st: st, log: log, kick: make(chan struct{}, 1)}
	r.flushed = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) add(res store.Result) {
	r.mu.Lock()
	r.pending = append(r.pending, res)
	r.added++
	n := len(r.pending)
	r.mu.Unlock()
	if n == 1 || n >= 256 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// flushWait blocks until everything added so far is written.
func (r *recorder) flushWait() {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.added
	if r.written >= target || r.closed {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
	r.waiting++
	for r.written < target && !r.closed {
		r.flushed.Wait()
	}
	r.waiting--
}

// gather lets a small batch grow for a few milliseconds before it is
// written, unless someone waits for it or the recorder is closing: one
// transaction per few hundred outcomes instead of one per handful keeps
// the single SQLite writer free for claims.
func (r *recorder) gather() {
	deadline := time.Now().Add(gatherFor)
	for {
		r.mu.Lock()
		ready := len(r.pending) == 0 || len(r.pending) >= gatherBatch || r.waiting > 0 || r.closed
		r.mu.Unlock()
		if ready || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(gatherStep)
	}
}

const (
	gatherFor   = 5 * time.Millisecond
	gatherStep  = time.Millisecond
	gatherBatch = 256
)

func (r *recorder) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *recorder) run() error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.kick:
		case <-tick.C:
		}
		r.gather()
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		closed := r.closed
		r.mu.Unlock()
		for len(batch) > 0 {
			// Outcomes must be written even while stopping.
			err := r.st.Record(context.Background(), batch)
			if err == nil {
				break
			}
			r.log.Error("record delivery outcomes; retrying", "count", len(batch), "err", err)
			time.Sleep(200 * time.Millisecond)
		}
		r.mu.Lock()
		r.written += uint64(len(batch))
		r.flushed.Broadcast()
		done := closed && len(r.pending) == 0
		r.mu.Unlock()
		if done {
			return nil
		}
	}
}
