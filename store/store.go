// Package store is crier's data: incidents, subscribers, opt-outs,
// triggers, the deliveries table (outbox and log in one), schedule runs,
// acknowledgements, tokens, users and sessions, and Slack/email thread
// references. It is one set of SQL queries over an engine (package
// engine): store/sqlite, the embedded default, or store/postgres, for
// several crier servers on one database.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/crier-dev/crier/store/engine"
	"github.com/crier-dev/crier/store/postgres"
	"github.com/crier-dev/crier/store/sqlite"
)

// SchemaVersion is the schema this binary writes (the same on every
// engine). A database with a newer version is refused rather than damaged.
const SchemaVersion = sqlite.SchemaVersion

// The engines number their schemas alike: a binary whose two engines
// disagree does not compile.
var _ = [1]struct{}{}[sqlite.SchemaVersion-postgres.SchemaVersion]

// Store is an open crier database.
type Store struct {
	eng engine.Engine
	w   dbh // where write transactions run (SQLite: the single writer)
	r   dbh // where reads run (SQLite: a read pool beside the writer)
	now func() time.Time
	// stmts caches the writer's prepared statements (SQLite).
	stmts stmtCache
	// bodies caches message bodies for claims, keys trigger keys.
	bodies bodyCache
	keys   keyCache
	// installation is the database's identity (see Installation).
	installation string
	// rebound caches the engine's spelling of each statement.
	rebound sync.Map
	// utf8: the engine's text must be valid UTF-8.
	utf8 bool
	// serial orders this process's serialized writes on a clustered
	// engine (see writeOnce).
	serial sync.Mutex
}

// Option changes how Open sets up the store.
type Option func(*Store)

// WithClock replaces time.Now (tests drive a fake clock through it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens (creating if needed) the SQLite database file at path and
// brings its schema up to date.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	eng, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return OpenEngine(ctx, eng, opts...)
}

// OpenURL opens the database at url: sqlite:PATH (or a bare path) for the
// embedded engine, postgres://… or postgresql://… for PostgreSQL.
func OpenURL(ctx context.Context, url string, opts ...Option) (*Store, error) {
	var eng engine.Engine
	var err error
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		eng, err = postgres.Open(ctx, url)
	default:
		eng, err = sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"))
	}
	if err != nil {
		return nil, err
	}
	return OpenEngine(ctx, eng, opts...)
}

// OpenEngine is a store on an open engine; Close closes the engine.
func OpenEngine(ctx context.Context, eng engine.Engine, opts ...Option) (*Store, error) {
	s := &Store{eng: eng, now: time.Now, utf8: eng.Name() == "postgres"}
	s.w = dbh{db: eng.Writer(), s: s}
	s.r = dbh{db: eng.Reader(), s: s}
	for _, o := range opts {
		o(s)
	}
	if err := s.loadInstallation(ctx); err != nil {
		eng.Close()
		return nil, err
	}
	return s, nil
}

// Path names the database for people: the file, or the URL without its
// password.
func (s *Store) Path() string { return s.eng.Where() }

// Engine is the name of the database engine: sqlite or postgres.
func (s *Store) Engine() string { return s.eng.Name() }

// Clustered reports whether several crier servers may run on this
// database at once (PostgreSQL).
func (s *Store) Clustered() bool { return s.eng.Clustered() }

// Locks opens a session for locks that hold across every crier process on
// the database.
func (s *Store) Locks(ctx context.Context) (engine.Locks, error) { return s.eng.Locks(ctx) }

// Close closes the database.
func (s *Store) Close() error {
	s.closeStmts()
	return s.eng.Close()
}

// rebind is q as the engine spells it, cached.
func (s *Store) rebind(q string) string {
	if v, ok := s.rebound.Load(q); ok {
		return v.(string)
	}
	r := s.eng.Rebind(q)
	if len(q) < 8192 {
		s.rebound.Store(q, r)
	}
	return r
}

// dbh is a pool whose statements are rebound for the engine.
type dbh struct {
	db *sql.DB
	s  *Store
}

func (d dbh) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.db.ExecContext(ctx, d.s.rebind(q), d.s.args(args)...)
}

func (d dbh) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.db.QueryContext(ctx, d.s.rebind(q), d.s.args(args)...)
}

func (d dbh) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return d.db.QueryRowContext(ctx, d.s.rebind(q), d.s.args(args)...)
}

// args adapts bound values to the engine: booleans go as 0 and 1, as
// the schema stores them on every engine (SQLite converts them itself;
// PostgreSQL refuses a boolean for an integer column), and on PostgreSQL,
// whose text must be UTF-8, a byte that is not (a provider's answer can
// carry anything) becomes U+FFFD; SQLite keeps the bytes as they came.
func (s *Store) args(args []any) []any {
	var out []any // a copy, once there is anything to change
	set := func(i int, v any) {
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	for i, a := range args {
		switch v := a.(type) {
		case bool:
			if v {
				set(i, int64(1))
			} else {
				set(i, int64(0))
			}
		case string:
			if s.utf8 && !utf8.ValidString(v) {
				set(i, validText(v))
			}
		}
	}
	if out == nil {
		return args
	}
	return out
}

func (d dbh) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return d.db.PrepareContext(ctx, d.s.rebind(q))
}

// BeginTx starts a read-only view (a transaction that writes nothing).
func (d dbh) BeginTx(ctx context.Context, o *sql.TxOptions) (txh, error) {
	tx, err := d.db.BeginTx(ctx, o)
	return txh{tx: tx, s: d.s}, err
}

// validText is s with every byte that is not UTF-8 replaced by U+FFFD.
func validText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// txh is a transaction whose statements are rebound for the engine.
type txh struct {
	tx *sql.Tx
	s  *Store
}

func (t txh) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.rebind(q), t.s.args(args)...)
}

func (t txh) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.rebind(q), t.s.args(args)...)
}

func (t txh) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.rebind(q), t.s.args(args)...)
}

func (t txh) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.s.rebind(q))
}

func (t txh) StmtContext(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	return t.tx.StmtContext(ctx, st)
}
func (t txh) Commit() error   { return t.tx.Commit() }
func (t txh) Rollback() error { return t.tx.Rollback() }

func (s *Store) loadInstallation(ctx context.Context) error {
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='installation'`).Scan(&s.installation); err != nil {
		return fmt.Errorf("store: read the installation id: %w", err)
	}
	return nil
}

// Installation is this database's identity: random, made with the
// database, the same for every process that opens it. Anything that must
// be unique across installations (an email's Message-ID) is derived from it.
func (s *Store) Installation() string { return s.installation }

// ms converts a time to the integer milliseconds the schema stores (UTC by
// construction). The zero time is stored as 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Heartbeat records that holder (a running crier serve) is alive until
// ttl from now. The CLI reads it to decide whether to deliver itself or
// leave the deliveries to the server.
func (s *Store) Heartbeat(ctx context.Context, name, holder string, ttl time.Duration) error {
	now := s.now()
	_, err := s.w.ExecContext(ctx, `INSERT INTO leases(name, holder, expires_at) VALUES(?,?,?)
		ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, expires_at=excluded.expires_at`,
		name, holder, ms(now.Add(ttl)))
	if err != nil {
		return fmt.Errorf("store: heartbeat: %w", err)
	}
	return nil
}

// ReleaseHeartbeat removes holder's lease, if it still holds it.
func (s *Store) ReleaseHeartbeat(ctx context.Context, name, holder string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM leases WHERE name=? AND holder=?`, name, holder)
	return err
}

// Alive reports who holds the named lease, if anyone does now.
func (s *Store) Alive(ctx context.Context, name string) (holder string, ok bool, err error) {
	var exp int64
	err = s.r.QueryRowContext(ctx, `SELECT holder, expires_at FROM leases WHERE name=?`, name).Scan(&holder, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read lease: %w", err)
	}
	return holder, exp > ms(s.now()), nil
}

// Ping checks that the database answers and accepts a write.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO leases(name, holder, expires_at) VALUES('ping','',0)
		ON CONFLICT(name) DO UPDATE SET expires_at=0`)
	return err
}

// Backup writes a consistent copy of the database to dst (which must not
// exist) while writers carry on (SQLite), or says how to back the engine
// up instead (PostgreSQL: pg_dump).
func (s *Store) Backup(ctx context.Context, dst string) error { return s.eng.Backup(ctx, dst) }
