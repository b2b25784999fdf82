package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
)

// Reconciliation settles deliveries in doubt on channels whose provider
// can say what it has (channels.Reconciler, Twilio's message list): a
// request that timed out, or that was under way when a crier process
// stopped. Found → sent, with the provider's id; not there
// ReconcileAfter after the request → queued again (the provider never
// created it, so sending it is not a duplicate); the provider's records
// cannot tell → left unknown for an operator, with why.

// reconcileLoop reconciles every few seconds until ctx ends.
func (d *Dispatcher) reconcileLoop(ctx context.Context) {
	var lanes []*lane
	for _, name := range d.order {
		if _, ok := d.lanes[name].ch.(channels.Reconciler); ok {
			lanes = append(lanes, d.lanes[name])
		}
	}
	if len(lanes) == 0 {
		return
	}
	every(ctx, max(time.Second, min(5*time.Second, d.opts.ReconcileFirst/3)), func() {
		for _, ln := range lanes {
			if n, err := d.Reconcile(ctx, ln.ch.Name()); err != nil && ctx.Err() == nil {
				d.opts.Log.Error("reconcile deliveries in doubt", "channel", ln.ch.Name(), "err", err)
			} else if n > 0 {
				d.Notify()
			}
		}
	})
}

// Reconcile asks channel's provider about its deliveries in doubt that are
// due to be asked about, and records what it says. It returns how many it
// queued to be sent again.
func (d *Dispatcher) Reconcile(ctx context.Context, channel string) (int, error) {
	ln, ok := d.lanes[channel]
	if !ok {
		return 0, fmt.Errorf("reconcile: no channel %q", channel)
	}
	rc, ok := ln.ch.(channels.Reconciler)
	if !ok {
		return 0, nil
	}
	doubts, err := d.st.InDoubt(ctx, channel, 50)
	if err != nil {
		return 0, err
	}
	// Several at a time: each is a request to the provider, and the
	// provider may be slow (that is often why they are in doubt).
	var mu sync.Mutex
	var errs []error
	requeued := 0
	sem := make(chan struct{}, reconcileParallel)
	var wg sync.WaitGroup
	for _, dt := range doubts {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			again, err := d.reconcileOne(ctx, ln, rc, dt)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if again {
				requeued++
			}
		}()
	}
	wg.Wait()
	return requeued, errors.Join(errs...)
}

// reconcileParallel is how many deliveries in doubt are looked up at once.
const reconcileParallel = 8

func (d *Dispatcher) reconcileOne(ctx context.Context, ln *lane, rc channels.Reconciler, dt store.Doubt) (bool, error) {
	now := d.opts.Now()
	log := d.opts.Log.With("channel", ln.ch.Name(), "delivery", dt.ID)
	res, err := rc.Reconcile(ctx, channels.Query{DeliveryID: dt.ID, Address: dt.Address, Text: dt.Text, Since: dt.AttemptAt,
		Taken: func(id string) (bool, error) { return d.st.ProviderIDTaken(ctx, id, dt.ID) }})
	age := now.Sub(dt.AttemptAt)
	switch {
	case err != nil:
		// The provider could not be asked: ask again later; an operator
		// sees the delivery as unknown meanwhile.
		log.Warn("reconciliation: could not ask the provider; asking again", "err", err)
		_, err := d.st.Reconciled(ctx, dt.ID, store.SettledLater, "", 0, now.Add(d.opts.ReconcileFirst), "")
		return false, err
	case res.Found:
		detail := fmt.Sprintf("reconciled: the provider has it as %s (status %s) from the request started %s", res.Receipt.ProviderID,
			res.Receipt.Status, dt.AttemptAt.UTC().Format("15:04:05.000 MST"))
		changed, err := d.st.Reconciled(ctx, dt.ID, store.SettledSent, res.Receipt.ProviderID, res.Receipt.Segments, time.Time{}, detail)
		if err != nil || !changed {
			return false, err
		}
		log.Info("reconciled: the provider has the message", "provider_id", res.Receipt.ProviderID, "status", res.Receipt.Status)
		if st := res.Receipt.Status; st != "" && store.KnownReceiptStatus(st) {
			// Its status moves it on as a receipt would (delivered, or
			// failed with the provider's reason).
			if _, err := d.st.ApplyReceipt(ctx, dt.ID, res.Receipt.ProviderID, st, res.Receipt.ErrorCode); err != nil {
				log.Warn("reconciliation: apply the provider's status", "err", err)
			}
		}
		return false, nil
	case res.Undecided && age >= d.opts.Retry.ReconcileAfter:
		detail := "in doubt: reconciliation could not tell whether the provider has it (" + res.Detail + "); check the provider, then crier retry"
		_, err := d.st.Reconciled(ctx, dt.ID, store.SettledUndecided, "", 0, time.Time{}, detail)
		log.Warn("reconciliation could not decide: left for an operator", "detail", res.Detail)
		return false, err
	case age >= d.opts.Retry.ReconcileAfter:
		detail := fmt.Sprintf("reconciled: the provider has no such message %s after the request started (%s); queued to be sent again",
			age.Round(time.Second), res.Detail)
		changed, err := d.st.Reconciled(ctx, dt.ID, store.SettledMissing, "", 0, time.Time{}, detail)
		if changed {
			log.Info("reconciled: the provider never got the message; sending it again")
		}
		return changed, err
	default:
		next := now.Add(d.opts.ReconcileFirst)
		if last := dt.AttemptAt.Add(d.opts.Retry.ReconcileAfter); last.Before(next) {
			next = last
		}
		_, err := d.st.Reconciled(ctx, dt.ID, store.SettledLater, "", 0, next, "")
		return false, err
	}
}
