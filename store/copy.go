package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CopyOptions changes how Copy works.
type CopyOptions struct {
	// BatchRows is how many rows one INSERT writes (0: as many as fit in
	// about 16,000 bound values, at most 1,000). Rows are read and written
	// a batch at a time: a table of millions is never held in memory.
	BatchRows int
	// Progress, if set, is told after each batch how far a table is.
	Progress func(table string, done, total int64)
	// Dead, if set, reports whether the holder of a lease that has not
	// run out is a process known to be gone (a crier serve killed on this
	// host): its heartbeat does not hold the source.
	Dead func(holder string) bool
}

// TableCopy is one table of a copy: its rows in the source, the rows
// copied, and the rows in the target afterwards.
type TableCopy struct {
	Table                  string
	Source, Copied, Target int64
}

// CopyResult is what Copy did.
type CopyResult struct {
	Tables []TableCopy
	// Rows is the number of rows copied, in every table.
	Rows int64
	// Installation is the source's installation id, now the target's too.
	Installation string
	// Repaired counts text values that PostgreSQL cannot hold as they were
	// (SQLite keeps any bytes a provider sent): invalid UTF-8 and NUL bytes
	// were stored as U+FFFD, as the store does with invalid UTF-8 in every
	// write on PostgreSQL.
	Repaired int64
}

// CopyRefused is why Copy refused before writing anything: the source is
// in use, the target already holds data, the two are one database, or
// their schemas differ.
type CopyRefused struct{ Reason string }

func (e *CopyRefused) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &CopyRefused{Reason: fmt.Sprintf(format, args...)}
}

// copyTables are crier's tables in an order that satisfies their foreign
// keys: incidents before incident_updates, triggers and messages before
// deliveries and ack_policies. meta comes last: the target's installation
// id is replaced by the source's. A table of the schema missing here is
// refused (and TestCopy_TablesAreTheSchema fails), so none is forgotten.
var copyTables = []string{
	"leases", "subscribers", "opt_outs", "incidents", "incident_updates",
	"triggers", "messages", "deliveries", "ack_policies", "acks", "inbound",
	"delivery_events", "threads", "schedule_runs", "api_requests",
	"api_tokens", "users", "sessions", "signin_failures", "meta",
}

// Copy copies every row of every table of src into dst, keeping ids,
// in one transaction on dst: all of it or, after any error, nothing.
// The target must be empty (a database crier has only just created); it
// becomes the same installation as the source (email Message-IDs carry
// on, as after restoring a backup). The source must be idle: no crier
// serve alive on it, no delivery claimed or being sent, no plan under way;
// while the copy runs it holds the SQLite file's writer, or locks the
// PostgreSQL tables against writes, so nothing else writes to it. The
// columns copied are read from both databases' catalogs and must match.
// Each table's rows are counted on both sides and
// must equal the rows copied. Both stores stay open; dst reads the new
// installation id.
func Copy(ctx context.Context, dst, src *Store, o CopyOptions) (CopyResult, error) {
	res := CopyResult{Installation: src.installation}
	if src.installation == dst.installation {
		return res, refuse("the target %s is installation %s already, as the source %s is: it is the same database, or a copy of it made before "+
			"(by migrate-store, or a restored backup); copy into a new, empty database", dst.Path(), src.installation, src.Path())
	}
	// Refuse a source in use before taking its lock, so a running
	// server's writes are not held up only to be told so.
	if err := src.checkIdle(ctx, src.r, o.Dead); err != nil {
		return res, err
	}
	stx, err := src.begin(ctx)
	if err != nil {
		return res, err
	}
	defer stx.Rollback()
	s := txh{tx: stx, s: src}
	dtx, err := dst.begin(ctx)
	if err != nil {
		return res, err
	}
	defer dtx.Rollback()
	d := txh{tx: dtx, s: dst}

	if err := checkVersions(ctx, src, s, dst, d); err != nil {
		return res, err
	}
	scat, err := src.catalog(ctx, s)
	if err != nil {
		return res, err
	}
	dcat, err := dst.catalog(ctx, d)
	if err != nil {
		return res, err
	}
	plans, err := planCopy(src, scat, dst, dcat)
	if err != nil {
		return res, err
	}
	// Nobody writes to the source while it is read, nor to the target
	// while it is checked and filled.
	if err := src.lockTables(ctx, s, "SHARE"); err != nil {
		return res, err
	}
	if err := dst.lockTables(ctx, d, "EXCLUSIVE"); err != nil {
		return res, err
	}
	if err := src.checkIdle(ctx, s, o.Dead); err != nil {
		return res, err
	}
	if err := dst.checkEmpty(ctx, d); err != nil {
		return res, err
	}
	c := &copier{ctx: ctx, src: s, dst: dtx, to: dst, batch: o.BatchRows, progress: o.Progress}
	for _, p := range plans {
		tc, err := c.table(p)
		if err != nil {
			return res, err
		}
		res.Tables = append(res.Tables, tc)
		res.Rows += tc.Copied
	}
	if err := dst.advanceIdentities(ctx, d, plans); err != nil {
		return res, err
	}
	if err := dtx.Commit(); err != nil {
		return res, fmt.Errorf("store: commit the copy on %s: %w", dst.Path(), err)
	}
	res.Repaired = c.repaired
	dst.installation = src.installation
	return res, nil
}

// begin starts a copy's transaction: on SQLite an IMMEDIATE one, which
// holds the file's single writer (no crier process writes to it until it
// ends); on PostgreSQL one whose tables lockTables locks. (The store's
// serialized writes take one advisory lock per PostgreSQL database, which
// a copy between two schemas of one database cannot take twice.)
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.eng.Begin(ctx, s.eng.Name() == "sqlite")
	if err != nil {
		return nil, fmt.Errorf("store: begin on %s: %w", s.Path(), err)
	}
	return tx, nil
}

// lockTables locks crier's tables on PostgreSQL for the rest of the
// transaction: SHARE lets the copy read while nobody writes, EXCLUSIVE
// keeps everyone else from writing or locking. A crier process that holds
// the database makes it wait; after lockWait it gives up and says so.
func (s *Store) lockTables(ctx context.Context, t txh, mode string) error {
	if s.eng.Name() == "sqlite" {
		return nil
	}
	if _, err := t.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockWait.Milliseconds())); err != nil {
		return fmt.Errorf("store: lock %s: %w", s.Path(), err)
	}
	if _, err := t.ExecContext(ctx, `LOCK TABLE `+strings.Join(copyTables, ", ")+` IN `+mode+` MODE`); err != nil {
		return fmt.Errorf("store: lock the tables of %s (is a crier process using it?): %w", s.Path(), err)
	}
	return nil
}

// lockWait is how long a copy waits for the tables of a PostgreSQL
// database that another transaction is writing.
const lockWait = 15 * time.Second

// checkIdle refuses a source that a crier process holds: a heartbeat that
// has not run out (crier serve, its dispatcher's node), a delivery claimed
// or being sent, a plan under way.
func (s *Store) checkIdle(ctx context.Context, q querier, dead func(string) bool) error {
	now := ms(s.now())
	rows, err := q.QueryContext(ctx, `SELECT name, holder, expires_at FROM leases WHERE expires_at > ? ORDER BY name`, now)
	if err != nil {
		return fmt.Errorf("store: read the leases of %s: %w", s.Path(), err)
	}
	var held []string
	for rows.Next() {
		var name, holder string
		var exp int64
		if err := rows.Scan(&name, &holder, &exp); err != nil {
			rows.Close()
			return fmt.Errorf("store: read the leases of %s: %w", s.Path(), err)
		}
		if dead != nil && dead(holder) {
			continue
		}
		until := fromMS(exp).Format(time.DateTime + " UTC")
		switch {
		case name == "server":
			held = append(held, fmt.Sprintf("crier serve (%s) is running on it (heartbeat until %s)", holder, until))
		case strings.HasPrefix(name, "node:"):
			held = append(held, fmt.Sprintf("a crier process (%s) is dispatching from it (heartbeat until %s)", holder, until))
		default:
			held = append(held, fmt.Sprintf("lease %q is held by %s until %s", name, holder, until))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read the leases of %s: %w", s.Path(), err)
	}
	if len(held) > 0 {
		return refuse("the source %s is in use: %s: stop crier serve (and any crier command delivering) on it, then run migrate-store again",
			s.Path(), strings.Join(held, "; "))
	}
	var claimed int64
	var by sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*), MIN(claimed_by) FROM deliveries WHERE lease_until != 0`).Scan(&claimed, &by); err != nil {
		return fmt.Errorf("store: read the claims of %s: %w", s.Path(), err)
	}
	if claimed > 0 {
		return refuse("the source %s is in use: %d deliveries are claimed or being sent (by %q): stop the crier process sending them; "+
			"if none runs (one was killed), start crier serve on the source once and stop it with SIGTERM, which settles what a stopped "+
			"process held, then run migrate-store again", s.Path(), claimed, by.String)
	}
	var key string
	var until int64
	err = q.QueryRowContext(ctx, `SELECT key, plan_until FROM triggers WHERE plan_until > ? ORDER BY plan_until DESC LIMIT 1`, now).Scan(&key, &until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("store: read the plans of %s: %w", s.Path(), err)
	default:
		return refuse("the source %s is in use: trigger %s is being planned by a crier process (its lease runs until %s): let it finish, then run migrate-store again",
			s.Path(), key, fromMS(until).Format(time.DateTime+" UTC"))
	}
	return nil
}

// checkEmpty refuses a target that holds any crier row beyond the
// installation id it was made with.
func (s *Store) checkEmpty(ctx context.Context, q querier) error {
	var found []string
	for _, t := range copyTables {
		where := ""
		if t == "meta" {
			where = ` WHERE key != 'installation'`
		}
		var n int64
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t+where).Scan(&n); err != nil {
			return fmt.Errorf("store: count the rows of %s on %s: %w", t, s.Path(), err)
		}
		if n > 0 {
			found = append(found, fmt.Sprintf("%s: %d rows", t, n))
		}
	}
	if len(found) > 0 {
		return refuse("the target %s already holds crier data (%s): migrate-store copies into an empty database only; "+
			"give it a new database (or schema), or drop the one it found if nothing in it is needed", s.Path(), strings.Join(found, ", "))
	}
	return nil
}

// checkVersions refuses unless both databases are at this crier's schema.
func checkVersions(ctx context.Context, src *Store, s querier, dst *Store, d querier) error {
	sv, err := src.schemaVersion(ctx, s)
	if err != nil {
		return err
	}
	dv, err := dst.schemaVersion(ctx, d)
	if err != nil {
		return err
	}
	if sv != SchemaVersion || dv != SchemaVersion {
		return refuse("the source %s has schema version %d and the target %s version %d: both must be at this crier's (%d)",
			src.Path(), sv, dst.Path(), dv, SchemaVersion)
	}
	return nil
}

// schemaVersion is the database's schema version as its engine records it.
func (s *Store) schemaVersion(ctx context.Context, q querier) (int, error) {
	query := `SELECT version FROM crier_schema`
	if s.eng.Name() == "sqlite" {
		query = `PRAGMA user_version`
	}
	var v int
	if err := q.QueryRowContext(ctx, query).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read the schema version of %s: %w", s.Path(), err)
	}
	return v, nil
}

// advanceIdentities moves each identity column's sequence (PostgreSQL)
// past the highest id copied, so the next row the store inserts does not
// take an id the copy brought. SQLite takes the next rowid by itself.
func (s *Store) advanceIdentities(ctx context.Context, q querier, plans []tablePlan) error {
	if s.eng.Name() == "sqlite" {
		return nil
	}
	for _, p := range plans {
		for _, c := range p.cols {
			if !c.dst.identity {
				continue
			}
			var v int64
			err := q.QueryRowContext(ctx, `SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX(`+quote(c.dst.name)+`), 0) + 1, false) FROM `+p.name,
				p.name, c.dst.name).Scan(&v)
			if err != nil {
				return fmt.Errorf("store: advance the sequence of %s.%s on %s: %w", p.name, c.dst.name, s.Path(), err)
			}
		}
	}
	return nil
}
