// Package postgres is crier's database engine for several crier servers
// on one PostgreSQL database, through github.com/jackc/pgx/v5 (a pgxpool
// pool, used through database/sql). Write transactions are serialized
// across every server by an advisory lock, as SQLite's single writer
// serializes them within one; the dispatcher's claims (FOR UPDATE SKIP
// LOCKED) and outcomes run beside them on row locks. Named locks (who runs
// the scheduler, who sends a rate-limited channel) are session advisory
// locks on a connection of their own, released by PostgreSQL when the
// process holding them dies.
package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/crier-dev/crier/store/engine"
)

//go:embed schema.sql
var schemaV3 string

// SchemaVersion is the schema this binary writes; it numbers schemas as
// the SQLite engine does (PostgreSQL starts at 3). A database with a newer
// version is refused rather than damaged.
const SchemaVersion = 3

// firstVersion is the version schema.sql creates.
const firstVersion = 3

// upgrades[i] brings a database from version firstVersion+i to the next.
var upgrades = []string{}

// Engine is an open PostgreSQL database.
type Engine struct {
	pool  *pgxpool.Pool
	db    *sql.DB
	where string
	conn  *pgx.ConnConfig // for the named locks' own connection
}

var _ engine.Engine = (*Engine)(nil)

// writeLock is the advisory lock every serialized write transaction takes.
var writeLock = lockKey("write")

// Open connects to the database at rawURL (postgres://…) and brings its
// schema up to date. Errors never print the password.
func Open(ctx context.Context, rawURL string) (*Engine, error) {
	where := Redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: database.url %s: %s", where, scrub(err, rawURL))
	}
	// Reads, the dispatcher's claims and one serialized writer at a time
	// share the pool (see store's writeOnce).
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	// A write waits for the serialized writers, not for a pool that is
	// busy with reads.
	cfg.MaxConnIdleTime = 5 * time.Minute
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to %s: %s", where, scrub(err, rawURL))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s: %s", where, scrub(err, rawURL))
	}
	e := &Engine{pool: pool, db: stdlib.OpenDBFromPool(pool), where: where, conn: cfg.ConnConfig.Copy()}
	if err := e.migrate(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Redact is rawURL without its password, for messages and logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrub is err's text without the password of rawURL in it.
func scrub(err error, rawURL string) string {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	if u, perr := url.Parse(rawURL); perr == nil {
		if p := u.Query().Get("password"); p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// migrate creates or upgrades the schema, one process at a time.
func (e *Engine) migrate(ctx context.Context) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate %s: %w", e.where, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("migrate")); err != nil {
		return fmt.Errorf("store: migrate %s: %w", e.where, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS crier_schema (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate %s: %w", e.where, err)
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM crier_schema`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v = 0
	case err != nil:
		return fmt.Errorf("store: migrate %s: %w", e.where, err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("store: %s has schema version %d, newer than this crier (%d): upgrade crier or use a backup", e.where, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	if v == 0 {
		var tables int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('deliveries','triggers','subscribers')`).Scan(&tables); err != nil {
			return fmt.Errorf("store: migrate %s: %w", e.where, err)
		}
		if tables > 0 {
			return fmt.Errorf("store: %s already has crier's tables but no crier_schema version: it is not a database this crier made; use an empty database or schema", e.where)
		}
		if _, err := tx.ExecContext(ctx, schemaV3); err != nil {
			return fmt.Errorf("store: migrate %s to v%d: %w", e.where, firstVersion, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO crier_schema(version) VALUES($1)`, firstVersion); err != nil {
			return fmt.Errorf("store: migrate %s: %w", e.where, err)
		}
		v = firstVersion
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key,value) VALUES('installation',$1) ON CONFLICT(key) DO NOTHING`, newInstallationID()); err != nil {
			return fmt.Errorf("store: migrate %s: record the installation id: %w", e.where, err)
		}
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, upgrades[v-firstVersion]); err != nil {
			return fmt.Errorf("store: migrate %s to v%d: %w", e.where, v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE crier_schema SET version=$1`, SchemaVersion); err != nil {
		return fmt.Errorf("store: migrate %s: %w", e.where, err)
	}
	return tx.Commit()
}

// Name is "postgres".
func (e *Engine) Name() string { return "postgres" }

// Where is the URL without its password.
func (e *Engine) Where() string { return e.where }

// Writer is the pool.
func (e *Engine) Writer() *sql.DB { return e.db }

// Reader is the same pool.
func (e *Engine) Reader() *sql.DB { return e.db }

// Prepares is false: pgx prepares and caches statements per connection.
func (e *Engine) Prepares() bool { return false }

// Clustered is true.
func (e *Engine) Clustered() bool { return true }

// Begin starts a READ COMMITTED transaction; a serialized one first takes
// the cluster-wide write lock, held until it ends.
func (e *Engine) Begin(ctx context.Context, serialized bool) (*sql.Tx, error) {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if serialized {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLock); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
	}
	return tx, nil
}

// Retry is true for a deadlock or a serialization failure: PostgreSQL
// rolled the transaction back so another could go on.
func (e *Engine) Retry(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Backup says how to back PostgreSQL up: crier copies SQLite files only.
// The error is errors.ErrUnsupported.
func (e *Engine) Backup(context.Context, string) error {
	return unsupported(fmt.Sprintf("this database is PostgreSQL (%s), and crier backup copies SQLite files only: back it up with PostgreSQL's tools, "+
		"for example pg_dump --format=custom --file=crier.dump \"$CRIER_DATABASE_URL\" (restore into an empty database with pg_restore), "+
		"or your managed service's backups", e.where))
}

// unsupported is an error that is errors.ErrUnsupported, in words.
type unsupported string

func (u unsupported) Error() string        { return string(u) }
func (u unsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// Close closes the pool.
func (e *Engine) Close() error {
	err := e.db.Close()
	e.pool.Close()
	return err
}

// lockKey is the advisory lock key for a name: 64 bits of FNV-1a of
// "crier:" and the name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("crier:" + name))
	return int64(h.Sum64())
}

// Locks opens a connection of its own for session advisory locks: they
// last while it does, and PostgreSQL releases them when it closes or the
// process dies.
func (e *Engine) Locks(ctx context.Context) (engine.Locks, error) {
	cfg := e.conn.Copy()
	// PostgreSQL frees the locks when it sees the connection is gone. A
	// process that dies closes it at once; one cut off by the network is
	// noticed by these keepalives within about half a minute, so another
	// node takes its roles over.
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to %s for locks: %s", e.where, scrubConfig(err, e.conn))
	}
	return &locks{c: c, held: map[string]bool{}}, nil
}

// scrubConfig is err's text without cfg's password.
func scrubConfig(err error, cfg *pgx.ConnConfig) string {
	msg := err.Error()
	if cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return msg
}

type locks struct {
	mu   sync.Mutex
	c    *pgx.Conn
	held map[string]bool
}

func (l *locks) TryLock(ctx context.Context, name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] {
		// Taking it again would count it twice: one unlock would not free it.
		return true, nil
	}
	var ok bool
	if err := l.c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(name)).Scan(&ok); err != nil {
		return false, err
	}
	if ok {
		l.held[name] = true
	}
	return ok, nil
}

func (l *locks) Unlock(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held[name] {
		return nil
	}
	delete(l.held, name)
	_, err := l.c.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockKey(name))
	return err
}

func (l *locks) Alive(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Ping(ctx)
}

func (l *locks) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = map[string]bool{}
	return l.c.Close(context.Background())
}

// newInstallationID is 128 random bits, hex.
func newInstallationID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// Rebind turns the store's SQL into PostgreSQL's: numbered placeholders,
// and PostgreSQL's spelling of the few things the store writes as SQLite
// does (see rewrites).
func (e *Engine) Rebind(q string) string {
	for _, r := range rewrites {
		q = strings.ReplaceAll(q, r[0], r[1])
	}
	return engine.Numbered(q)
}

// rewrites are the store's SQLite spellings and their PostgreSQL ones.
var rewrites = [][2]string{
	// A list of ids bound as one JSON array.
	{`SELECT value FROM json_each(?)`, `SELECT value::bigint FROM json_array_elements_text(?::json)`},
	// Events in the order they were written: SQLite's rowid, an identity
	// column here.
	{`ORDER BY e.rowid`, `ORDER BY e.id`},
	{`ORDER BY rowid`, `ORDER BY id`},
	// A claim's rows are locked, and rows another server has locked are
	// passed over; SQLite has one writer and needs neither.
	{`/*FOR UPDATE SKIP LOCKED*/`, `FOR UPDATE SKIP LOCKED`},
	// An empty blob.
	{`X''`, `'\x'::bytea`},
}
