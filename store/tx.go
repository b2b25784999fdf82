package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Tx is one write transaction. Everything that must land together (an
// incident update and the deliveries it triggers; every delivery of a
// broadcast) is written through one Tx.
type Tx struct {
	tx  *sql.Tx
	ctx context.Context
	s   *Store
}

// Write runs fn in one IMMEDIATE transaction and commits it if fn returns
// nil; otherwise nothing fn wrote is kept.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(&Tx{tx: tx, ctx: ctx, s: s}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row { return t.tx.QueryRowContext(t.ctx, q, args...) }

// querier is what both a Tx and the read pool offer, so read helpers work
// inside and outside a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}
