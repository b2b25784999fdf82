// Package engine is what crier's store needs of a SQL database: its
// connections, how its SQL is spelt, how write transactions are ordered,
// and locks that hold across every crier process using it. store/sqlite
// (the embedded default: one file, one server) and store/postgres
// (several servers on one database) implement it; package store holds the
// one set of queries that runs on both.
package engine

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// Engine is an open database.
type Engine interface {
	// Name is "sqlite" or "postgres".
	Name() string
	// Where names the database for people: the file, or the URL without
	// its password.
	Where() string
	// Writer is where write transactions run; Reader where reads do (the
	// same pool on an engine that needs no separate one).
	Writer() *sql.DB
	Reader() *sql.DB
	// Rebind turns the store's SQL into this engine's: the store writes
	// ? placeholders and SQLite's spelling of the few things the engines
	// spell differently (see package postgres).
	Rebind(q string) string
	// Begin starts a write transaction. A serialized one runs alone among
	// all serialized transactions of every crier process on the database,
	// as every write does on SQLite's single writer; the dispatcher's
	// claims and outcomes are not serialized and rely on row locks.
	Begin(ctx context.Context, serialized bool) (*sql.Tx, error)
	// Retry reports whether a transaction that failed with err may simply
	// be run again (PostgreSQL: a deadlock or a serialization failure).
	Retry(err error) bool
	// Prepares reports whether the store should prepare its frequent
	// statements once on the writer and reuse them (SQLite's single
	// writer connection; pgx caches prepared statements by itself).
	Prepares() bool
	// Clustered reports whether several crier servers may share the
	// database at once.
	Clustered() bool
	// Locks opens a session for named locks that hold across every crier
	// process on the database (the scheduler, a rate-limited channel).
	Locks(ctx context.Context) (Locks, error)
	// Backup writes a consistent copy of the database to dst, or says how
	// to back this engine up instead.
	Backup(ctx context.Context, dst string) error
	Close() error
}

// Locks are named locks held by one session. A lock is this session's
// until it is unlocked or the session ends; a process that dies ends its
// session, and its locks go to whoever asks next.
type Locks interface {
	// TryLock takes the named lock if no session holds it, and reports
	// whether this session holds it now.
	TryLock(ctx context.Context, name string) (bool, error)
	// Unlock gives the lock up.
	Unlock(ctx context.Context, name string) error
	// Alive checks the session: after an error every lock it held may be
	// another session's.
	Alive(ctx context.Context) error
	Close() error
}

// Numbered replaces each ? placeholder outside quoted text with $1, $2…
// in order, as PostgreSQL expects.
func Numbered(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte // the quote we are inside, or 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			// A comment runs to the end of the line.
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j])
			i += j - 1
			continue
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
