package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxPrepared bounds the statement cache. Statements built with a varying
// number of placeholders would otherwise fill it: once it is full, new
// statements simply run unprepared.
const maxPrepared = 256

// stmtCache keeps statements prepared on the writer. The writer pool has a
// single connection, so a statement is prepared once and every transaction
// reuses it (database/sql's Tx.StmtContext finds it on that connection).
// A statement is prepared after the transaction that first ran it has
// ended, since preparing needs the connection that transaction holds.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns q prepared on the writer, or nil if it is not (yet).
func (s *Store) prepared(q string) *sql.Stmt {
	if !s.eng.Prepares() {
		return nil
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return s.stmts.m[q]
}

// prepare adds the statements a transaction ran unprepared to the cache.
// It must not be called while the caller holds a transaction.
func (s *Store) prepare(ctx context.Context, qs []string) {
	if !s.eng.Prepares() {
		return
	}
	for _, q := range qs {
		s.stmts.mu.Lock()
		_, done := s.stmts.m[q]
		full := len(s.stmts.m) >= maxPrepared
		s.stmts.mu.Unlock()
		if done || full || len(q) > 8192 {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			continue // the statement runs unprepared and reports its own error
		}
		s.stmts.mu.Lock()
		if _, ok := s.stmts.m[q]; ok {
			st.Close()
		} else {
			if s.stmts.m == nil {
				s.stmts.m = map[string]*sql.Stmt{}
			}
			s.stmts.m[q] = st
		}
		s.stmts.mu.Unlock()
	}
}

// closeStmts closes every cached statement.
func (s *Store) closeStmts() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for q, st := range s.stmts.m {
		st.Close()
		delete(s.stmts.m, q)
	}
}
