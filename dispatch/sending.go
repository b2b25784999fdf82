package dispatch

import (
	"context"
	"runtime"

	"github.com/crier-dev/crier/store"
)

// claim returns the next deliveries for a worker to send now (o.Send),
// already marked sending, durably. The same transaction first writes
// every outcome waiting to be recorded, so a worker about to send again
// has the outcome of its last send on record: a crash leaves in doubt only
// what is really in flight, at most one message (or one batch) a worker.
//
// Every worker waiting at a moment is served by one transaction (group
// commit): the first to arrive commits for all who are waiting, in rounds,
// until nobody is.
func (r *recorder) claim(o store.ClaimOptions) ([]store.Claimed, error) {
	q := &claimReq{opts: o, done: make(chan struct{})}
	r.mu.Lock()
	r.claims = append(r.claims, q)
	lead := !r.claiming
	r.claiming = true
	r.mu.Unlock()
	if lead {
		r.claimAll()
	}
	<-q.done
	return q.out, q.err
}

type claimReq struct {
	opts store.ClaimOptions
	out  []store.Claimed
	err  error
	done chan struct{}
}

// claimAll commits rounds, each with the outcomes pending then and the
// claims of everyone waiting, until no claim is waiting; then the next
// caller leads.
func (r *recorder) claimAll() {
	for {
		// Workers that have just sent come back for their next claim a
		// moment apart: let them join this round, or every other round
		// would carry one worker's claim alone.
		for range 3 {
			runtime.Gosched()
		}
		r.mu.Lock()
		reqs := r.claims
		r.claims = nil
		if len(reqs) == 0 {
			r.claiming = false
			r.mu.Unlock()
			return
		}
		results := r.pending
		r.pending = nil
		r.mu.Unlock()
		// Claims of one lane in one round are one statement; their rows
		// are shared out in claim order, a worker's share at a time.
		var opts []store.ClaimOptions
		slot := make([]int, len(reqs))
		for i, q := range reqs {
			slot[i] = -1
			for j, o := range opts {
				if sameClaim(o, q.opts) {
					slot[i] = j
					opts[j].Limit += q.opts.Limit
				}
			}
			if slot[i] < 0 {
				slot[i] = len(opts)
				opts = append(opts, q.opts)
			}
		}
		// Written even while stopping: a send that was let go must be on
		// record before it starts, and outcomes are never dropped.
		got, err := r.st.Round(context.Background(), results, opts)
		r.mu.Lock()
		if err != nil {
			r.pending = append(results, r.pending...) // the recorder writes them itself
		} else {
			r.written += uint64(len(results))
			r.flushed.Broadcast()
		}
		r.mu.Unlock()
		for i, q := range reqs {
			q.err = err
			if err == nil {
				rows := got[slot[i]]
				n := min(q.opts.Limit, len(rows))
				q.out, got[slot[i]] = rows[:n:n], rows[n:]
			}
			close(q.done)
		}
	}
}

// sameClaim reports whether two claims can be made by one statement.
func sameClaim(a, b store.ClaimOptions) bool {
	if a.Channel != b.Channel || a.Serial != b.Serial || a.Send != b.Send || a.Holder != b.Holder || a.Lease != b.Lease || len(a.TriggerIDs) != len(b.TriggerIDs) {
		return false
	}
	for i := range a.TriggerIDs {
		if a.TriggerIDs[i] != b.TriggerIDs[i] {
			return false
		}
	}
	return true
}
