// Package store is crier's one SQLite file: incidents, subscribers,
// opt-outs, triggers, the deliveries table (outbox and log in one), schedule
// runs and Slack/email thread references. It uses modernc.org/sqlite (pure
// Go) with one writer connection and a small read pool.
package store

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
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
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
}

// SchemaVersion is the schema this binary writes. A database with a newer
// version is refused rather than damaged.
const SchemaVersion = 3

// Store is an open crier database.
type Store struct {
	w    *sql.DB // the single writer
	r    *sql.DB // readers (WAL lets them run beside the writer)
	path string
	now  func() time.Time
	// stmts caches the writer's prepared statements.
	stmts stmtCache
	// bodies caches message bodies for claims, keys trigger keys.
	bodies bodyCache
	keys   keyCache
	// installation is the database's identity (see Installation).
	installation string
}

// Option changes how Open sets up the store.
type Option func(*Store)

// WithClock replaces time.Now (tests drive a fake clock through it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

func dsn(path string, readOnly bool) string {
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

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: the database path is empty: set store.path in the config")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, path: path, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	s.closeStmts()
	return errors.Join(s.r.Close(), s.w.Close())
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("store: open %s: %w (is it a SQLite database?)", s.path, err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("store: %s has schema version %d, newer than this crier (%d): upgrade crier or use a backup", s.path, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return s.loadInstallation(ctx)
	}
	tx, err := s.w.BeginTx(ctx, nil)
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key,value) VALUES('installation',?) ON CONFLICT(key) DO NOTHING`, newInstallationID()); err != nil {
		return fmt.Errorf("store: migrate: record the installation id: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return s.loadInstallation(ctx)
}

// newInstallationID is 128 random bits, hex.
func newInstallationID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

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
// exist) while writers carry on.
func (s *Store) Backup(ctx context.Context, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("store: backup target %s already exists: choose a new file name", dst)
	}
	// The read pool is query_only, which SQLite applies to VACUUM INTO too,
	// and the writer must stay free: the copy gets a connection of its own.
	// In WAL mode it holds only a read transaction.
	db, err := sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", dst, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("store: backup to %s: %w", dst, err)
	}
	return nil
}
