package store

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Tx is one write transaction. Everything that must land together (an
// incident update and the deliveries it triggers; every delivery of a
// broadcast) is written through one Tx.
type Tx struct {
	tx    txh
	ctx   context.Context
	s     *Store
	after []func()
	// unprepared lists statements that ran without a cached preparation.
	unprepared []string
	// serialized: see Store.write; locked: it holds Store.serial.
	serialized, locked bool
}

// AfterCommit runs fn once the transaction has committed, and never if it
// rolls back: what it reports (metrics) then matches what was written.
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// Write runs fn in one transaction and commits it if fn returns nil;
// otherwise nothing fn wrote is kept. Write transactions are serialized:
// on SQLite by its single writer, on PostgreSQL across every crier process
// by an advisory lock, so each sees the last one's commit (the
// dispatcher's claims and outcomes alone run beside them, on row locks).
// fn may be run again if the engine rolled the transaction back to let
// another go first (a deadlock): it must not keep state across runs
// beyond what it sets afresh.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error { return s.write(ctx, true, fn) }

// write runs fn as Write does; serialized false runs it beside other
// writers, on row locks alone.
func (s *Store) write(ctx context.Context, serialized bool, fn func(*Tx) error) error {
	for try := 1; ; try++ {
		err := s.writeOnce(ctx, serialized, fn)
		if err == nil || try == maxWriteTries || !s.eng.Retry(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(try) * 5 * time.Millisecond)
	}
}

// maxWriteTries bounds how often a transaction is run again after the
// engine rolled it back in favour of another.
const maxWriteTries = 5

func (s *Store) writeOnce(ctx context.Context, serialized bool, fn func(*Tx) error) error {
	lock := serialized && s.eng.Clustered()
	if lock {
		// This process's serialized writers queue here, not on pool
		// connections waiting for the cluster's write lock: one that
		// waited there would hold a connection the lock's holder may
		// need for a read, and a busy pool would then stand still.
		s.serial.Lock()
		defer s.serial.Unlock()
	}
	tx, err := s.eng.Begin(ctx, serialized)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	t := &Tx{tx: txh{tx: tx, s: s}, ctx: ctx, s: s, serialized: serialized, locked: lock}
	defer func() {
		_ = t.tx.Rollback() // no-op after a commit; frees the connection
		if len(t.unprepared) > 0 {
			s.prepare(context.WithoutCancel(ctx), t.unprepared)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	for _, f := range t.after {
		f()
	}
	return nil
}

// Continue commits what t has written so far, runs its after-commit
// functions and carries on in a new transaction: a large plan commits a
// chunk at a time. Statements prepared on the old transaction (an
// Enqueuer's) must be prepared again.
func (t *Tx) Continue() error {
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	after := t.after
	t.after = nil
	for _, f := range after {
		f()
	}
	// Between the two transactions the writer is free: whoever was told
	// by an after-commit function (a dispatcher claiming what was just
	// committed) and is waiting for it gets it before this carries on.
	if t.locked {
		t.s.serial.Unlock()
		runtime.Gosched()
		t.s.serial.Lock()
	}
	tx, err := t.s.eng.Begin(t.ctx, t.serialized)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	t.tx = txh{tx: tx, s: t.s}
	return nil
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	if st := t.stmt(q); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(q); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, q, args...)
}

// execUncached runs a statement that is built for one use (its text holds
// values), keeping it out of the statement cache.
func (t *Tx) execUncached(q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	if st := t.stmt(q); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, q, args...)
}

// stmt returns q prepared on the writer's connection, bound to this
// transaction, or nil when q cannot be cached (the caller then runs it
// directly). Parsing SQL was a tenth of the dispatcher's time: the hot
// statements (claims, outcomes, events) are parsed once per process.
func (t *Tx) stmt(q string) *sql.Stmt {
	if !t.s.eng.Prepares() {
		return nil
	}
	ps := t.s.prepared(q)
	if ps == nil {
		if !slices.Contains(t.unprepared, q) {
			t.unprepared = append(t.unprepared, q)
		}
		return nil
	}
	return t.tx.StmtContext(t.ctx, ps)
}

// querier is what both a Tx and the read pool offer, so read helpers work
// inside and outside a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}
