// Package cluster holds named roles for one crier process among all the
// processes sharing its database: the scheduler, and each rate-limited
// channel. A role is a lock of the database's (see store/engine Locks) on
// a session of the process's own; it is the process's until the process
// gives it up, its session breaks, or the process dies, and then another
// process takes it at its next try.
package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Locks is a database session's named locks (engine.Locks).
type Locks interface {
	TryLock(ctx context.Context, name string) (bool, error)
	Unlock(ctx context.Context, name string) error
	Alive(ctx context.Context) error
	Close() error
}

// Member is this process's place in the cluster: one locks session, kept
// alive, and the roles held on it.
type Member struct {
	open  func(ctx context.Context) (Locks, error)
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	sess Locks
	held map[string]chan struct{} // role → closed when it is lost
}

// New is a member whose sessions open opens; every is how often it tries
// for a role it waits for and checks its session (default 3s).
func New(open func(ctx context.Context) (Locks, error), every time.Duration, log *slog.Logger) *Member {
	if every <= 0 {
		every = 3 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Member{open: open, log: log, every: every, held: map[string]chan struct{}{}}
}

// Run checks the session until ctx ends: when it breaks, every role held
// on it is lost (their channels close) and a new session is opened at the
// next try. At the end every role is given up and the session closed.
func (m *Member) Run(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.closeSession()
			return
		case <-t.C:
		}
		m.mu.Lock()
		sess := m.sess
		m.mu.Unlock()
		if sess == nil {
			continue
		}
		check, cancel := context.WithTimeout(ctx, m.every)
		err := sess.Alive(check)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.log.Error("cluster session lost: giving up the roles held on it", "err", err)
			m.closeSession()
		}
	}
}

func (m *Member) closeSession() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for role, lost := range m.held {
		close(lost)
		delete(m.held, role)
	}
	if m.sess != nil {
		_ = m.sess.Close()
		m.sess = nil
	}
}

// session is the open session, opening one if needed.
func (m *Member) session(ctx context.Context) (Locks, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess != nil {
		return m.sess, nil
	}
	s, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	m.sess = s
	return s, nil
}

// Hold waits until this process holds role, trying every few seconds, and
// returns a channel that is closed if the role is lost (the session
// broke) and a function that gives it up. It returns ctx's error if ctx
// ends first.
func (m *Member) Hold(ctx context.Context, role string) (lost <-chan struct{}, release func(), err error) {
	for {
		if ch, ok := m.try(ctx, role); ok {
			return ch, func() { m.release(role, ch) }, nil
		}
		t := time.NewTimer(m.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Member) try(ctx context.Context, role string) (chan struct{}, bool) {
	sess, err := m.session(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cluster session: cannot connect; trying again", "role", role, "err", err)
		}
		return nil, false
	}
	ok, err := sess.TryLock(ctx, role)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cluster session: lock failed; reconnecting", "role", role, "err", err)
			m.closeSession()
		}
		return nil, false
	}
	if !ok {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess != sess { // the session broke meanwhile
		return nil, false
	}
	ch, held := m.held[role]
	if !held {
		ch = make(chan struct{})
		m.held[role] = ch
	}
	return ch, true
}

func (m *Member) release(role string, ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[role] != ch {
		return // lost already
	}
	delete(m.held, role)
	if m.sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.sess.Unlock(ctx, role); err != nil {
			m.log.Warn("cluster: give up role", "role", role, "err", err)
		}
	}
}
