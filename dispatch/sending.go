package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/crier-dev/crier/store"
)

// marker makes claimed deliveries sending immediately before their
// provider calls (store.MarkSending), durably: a crash then leaves in
// doubt only the requests that were started. Every worker waiting at a
// moment is served by one transaction (group commit), so marking costs a
// commit per round of sends rather than one per message.
type marker struct {
	st     *store.Store
	holder string
	lease  time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	waiting []*markReq
	busy    bool // a commit is under way; the next one gathers the waiting
}

type markReq struct {
	ids    []int64
	marked []int64
	err    error
	done   chan struct{}
}

func newMarker(st *store.Store, holder string, lease time.Duration, log *slog.Logger) *marker {
	return &marker{st: st, holder: holder, lease: lease, log: log}
}

// mark marks ids sending and returns the ones that were (a claim that is
// no longer this process's is left out and must not be sent). It returns
// nothing, and logs why, when the database cannot be written: the claims
// then come back when they are released.
func (m *marker) mark(ids []int64) []int64 {
	r := &markReq{ids: ids, done: make(chan struct{})}
	m.mu.Lock()
	m.waiting = append(m.waiting, r)
	lead := !m.busy
	m.busy = true
	m.mu.Unlock()
	if lead {
		m.commitAll()
	}
	<-r.done
	if r.err != nil {
		m.log.Error("mark deliveries sending; not sending them now", "count", len(ids), "err", r.err)
		return nil
	}
	return r.marked
}

// commitAll commits the marks of everyone waiting, in rounds, until no
// one is left waiting; then the next caller leads.
func (m *marker) commitAll() {
	for {
		m.mu.Lock()
		batch := m.waiting
		m.waiting = nil
		if len(batch) == 0 {
			m.busy = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		var ids []int64
		for _, r := range batch {
			ids = append(ids, r.ids...)
		}
		// Marks are written even while stopping: a send that was let go
		// must be on record before it starts.
		marked, err := m.st.MarkSending(context.Background(), m.holder, ids, m.lease)
		ok := make(map[int64]bool, len(marked))
		for _, id := range marked {
			ok[id] = true
		}
		for _, r := range batch {
			r.err = err
			for _, id := range r.ids {
				if ok[id] {
					r.marked = append(r.marked, id)
				}
			}
			close(r.done)
		}
	}
}
