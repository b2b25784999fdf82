// Package sqlite is crier's embedded database engine: one SQLite file
// (modernc.org/sqlite, pure Go) with one writer connection and a small
// read pool in WAL mode. One crier server runs on a file at a time; the
// store keeps everything else.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/crier-dev/crier/store/engine"
)

//go:embed schema.sql
var schemaV1 string

// upgrades[i] brings a database from schema version i+1 to i+2. A new
// database gets schemaV1 and then every upgrade, so both paths end equal.
// schema.sql is the schema of the first release and does not change
// again: a later change is a new entry here and SchemaVersion+1.
var upgrades = []string{
	// v2: planning in chunks. A large trigger's deliveries are committed a
	// chunk at a time so sending starts at once; the trigger keeps what
	// is needed to finish planning after a crash.
	`ALTER TABLE triggers ADD COLUMN plan_spec TEXT NOT NULL DEFAULT '';   -- the request, while planning is unfinished
	 ALTER TABLE triggers ADD COLUMN plan_cursor TEXT NOT NULL DEFAULT ''; -- the last subscriber planned
	 ALTER TABLE triggers ADD COLUMN plan_until INTEGER NOT NULL DEFAULT 0; -- the planner's lease; 0 once planning is complete
	 CREATE INDEX triggers_planning ON triggers(plan_until) WHERE plan_until != 0;
	 CREATE INDEX subscribers_locale ON subscribers(locale, id); -- the locales a plan checks templates for, without a scan
	 -- Only SMS receipts look a delivery up by its provider id: an email's
	 -- Message-ID (random by design) need not be indexed on every send.
	 DROP INDEX deliveries_provider;
	 CREATE INDEX deliveries_provider ON deliveries(provider_id) WHERE provider_id != '' AND kind = 'sms';`,
	// v3: claimed is not sending. A claim is a lease on a queued row
	// (claimed_by, lease_until); a row becomes sending, with attempt_at,
	// only just before its provider call, so a crash leaves in doubt only
	// the requests really started. The provider's own segment count is
	// kept beside crier's; the alert rule that planned a delivery is kept,
	// so an incident's updates reach everyone its alerts reached; a
	// broadcast's fingerprint recognises a repeat; meta holds the
	// installation's identity.
	`ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';      -- the process holding the row's lease ('' none)
	 ALTER TABLE deliveries ADD COLUMN attempt_at INTEGER NOT NULL DEFAULT 0;    -- when the latest provider request started (0: never)
	 ALTER TABLE deliveries ADD COLUMN provider_segments INTEGER NOT NULL DEFAULT 0; -- segments as the provider counted them
	 ALTER TABLE deliveries ADD COLUMN rule TEXT NOT NULL DEFAULT '';            -- the alert rule (or briefing) that planned it
	 ALTER TABLE triggers ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';       -- what a repeat of the same request looks like
	 DROP INDEX deliveries_claim;
	 -- The unclaimed queued rows (here) and the rows a process holds
	 -- (below). Their conditions are on lease_until, which is set exactly
	 -- while claimed_by is, rather than on claimed_by: SQLite re-prepares
	 -- a statement whenever it must compare a bound value with a partial
	 -- index's condition, and marks and outcomes find rows by
	 -- claimed_by = ? thousands of times a second.
	 CREATE INDEX deliveries_claim ON deliveries(channel, priority DESC, next_at, id) WHERE status = 'queued' AND lease_until = 0;
	 -- Channel first: a lookup by claimed_by alone (marks, outcomes) must
	 -- go by id, never scan a busy process's claims.
	 CREATE INDEX deliveries_claimed ON deliveries(channel, claimed_by) WHERE lease_until != 0;
	 DROP INDEX deliveries_sending;
	 CREATE INDEX deliveries_unknown ON deliveries(channel, next_at) WHERE status = 'unknown';
	 CREATE INDEX deliveries_rule ON deliveries(incident_id, rule, subscriber_id) WHERE incident_id != '' AND rule != '';
	 CREATE INDEX triggers_fingerprint ON triggers(fingerprint, created_at) WHERE fingerprint != '';
	 CREATE TABLE meta (
	     key   TEXT PRIMARY KEY,
	     value TEXT NOT NULL
	 );`,
	// v4: failed sign-ins are counted in the database, so the limit on
	// guessing holds for every crier server on it, not per process. A
	// sign-in attempt is written before its credentials are checked (so
	// parallel guesses are counted too) and deleted again when it
	// succeeds; rows older than the window are deleted as sign-ins come.
	`CREATE TABLE signin_failures (
	     id        INTEGER PRIMARY KEY,
	     key       TEXT NOT NULL,     -- what is limited: an address, or a hash of the user name typed
	     failed_at INTEGER NOT NULL   -- when (unix ms)
	 );
	 CREATE INDEX signin_failures_count ON signin_failures(key, failed_at);
	 CREATE INDEX signin_failures_age ON signin_failures(failed_at);`,
}

// SchemaVersion is the schema this binary writes. A database with a newer
// version is refused rather than damaged.
const SchemaVersion = 4

// Engine is an open SQLite database file.
type Engine struct {
	w, r *sql.DB
	path string
}

var _ engine.Engine = (*Engine)(nil)

// DSN is the data source name of the file at path: the pragmas every
// connection needs (busy timeout, WAL, NORMAL synchronous, foreign keys),
// IMMEDIATE write transactions, and query_only for readOnly.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Engine, error) {
	if path == "" {
		return nil, errors.New("store: the database path is empty: set store.path (or database.url: sqlite:PATH) in the config")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	w, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	e := &Engine{w: w, path: path}
	if err := e.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", DSN(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	e.r = r
	return e, nil
}

func (e *Engine) migrate(ctx context.Context) error {
	var v int
	if err := e.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("store: open %s: %w (is it a SQLite database?)", e.path, err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("store: %s has schema version %d, newer than this crier (%d): upgrade crier or use a backup", e.path, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	tx, err := e.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	if v == 0 {
		if _, err := tx.ExecContext(ctx, schemaV1); err != nil {
			return fmt.Errorf("store: migrate to v1: %w", err)
		}
		v = 1
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, upgrades[v-1]); err != nil {
			return fmt.Errorf("store: migrate to v%d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	// The installation's identity is made once, with the database (or
	// with the upgrade that brought it), and never changes.
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key,value) VALUES('installation',?) ON CONFLICT(key) DO NOTHING`, NewInstallationID()); err != nil {
		return fmt.Errorf("store: migrate: record the installation id: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// NewInstallationID is 128 random bits, hex.
func NewInstallationID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// Name is "sqlite".
func (e *Engine) Name() string { return "sqlite" }

// Where is the database file.
func (e *Engine) Where() string { return e.path }

// Writer is the single writer connection.
func (e *Engine) Writer() *sql.DB { return e.w }

// Reader is the read pool (WAL lets readers run beside the writer).
func (e *Engine) Reader() *sql.DB { return e.r }

// Rebind returns q: the store writes SQLite's SQL.
func (e *Engine) Rebind(q string) string { return q }

// Begin starts an IMMEDIATE transaction on the single writer: every write
// is serialized, whatever serialized says.
func (e *Engine) Begin(ctx context.Context, _ bool) (*sql.Tx, error) { return e.w.BeginTx(ctx, nil) }

// Retry is false: with one writer no transaction is ever rolled back to
// let another go first.
func (e *Engine) Retry(error) bool { return false }

// Prepares is true: statements are prepared once on the writer.
func (e *Engine) Prepares() bool { return true }

// Clustered is false: one crier server per file.
func (e *Engine) Clustered() bool { return false }

// Backup writes a consistent copy of the database to dst (which must not
// exist) while writers carry on.
func (e *Engine) Backup(ctx context.Context, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("store: backup target %s already exists: choose a new file name", dst)
	}
	// The read pool is query_only, which SQLite applies to VACUUM INTO too,
	// and the writer must stay free: the copy gets a connection of its own.
	// In WAL mode it holds only a read transaction.
	db, err := sql.Open("sqlite", DSN(e.path, false))
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dst, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("store: backup to %s: %w", dst, err)
	}
	return nil
}

// Close closes both pools.
func (e *Engine) Close() error {
	var errs []error
	if e.r != nil {
		errs = append(errs, e.r.Close())
	}
	return errors.Join(append(errs, e.w.Close())...)
}

// Locks are held within this process: one crier server runs on a SQLite
// file (a second refuses to start), so the process is the whole cluster.
func (e *Engine) Locks(context.Context) (engine.Locks, error) { return &locks{db: e.path}, nil }

// processLocks are the locks of every session of this process, by
// database file and name.
var processLocks = struct {
	sync.Mutex
	m map[string]*locks
}{m: map[string]*locks{}}

type locks struct {
	db string
}

func (l *locks) key(name string) string { return l.db + "\x00" + name }

func (l *locks) TryLock(_ context.Context, name string) (bool, error) {
	processLocks.Lock()
	defer processLocks.Unlock()
	if owner, ok := processLocks.m[l.key(name)]; ok && owner != l {
		return false, nil
	}
	processLocks.m[l.key(name)] = l
	return true, nil
}

func (l *locks) Unlock(_ context.Context, name string) error {
	processLocks.Lock()
	defer processLocks.Unlock()
	if processLocks.m[l.key(name)] == l {
		delete(processLocks.m, l.key(name))
	}
	return nil
}

func (l *locks) Alive(context.Context) error { return nil }

func (l *locks) Close() error {
	processLocks.Lock()
	defer processLocks.Unlock()
	for name, owner := range processLocks.m {
		if owner == l {
			delete(processLocks.m, name)
		}
	}
	return nil
}
