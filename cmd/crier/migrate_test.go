package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// migratePassword is the password put in test URLs: the test server
// trusts its clients and ignores it, but crier must never print it.
const migratePassword = "pw-Zq81-never-printed"

// withPassword is a postgres:// URL with migratePassword in it.
func withPassword(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), migratePassword)
	return u.String()
}

// readmeWalkthrough runs the README's walkthrough on h (plus a token and
// a user, so their tables hold rows too).
func readmeWalkthrough(h *harness) {
	h.t.Helper()
	h.mustRun("incident", "open", "--title", "111 clinical system unavailable", "--severity", "critical",
		"--summary", "Supplier hit by ransomware; system offline",
		"--impact", "Referrals@wales=outage:Phone the duty clinician",
		"--impact", "Emergency prescriptions@england=degraded:Use paper FP10 prescriptions")
	h.mustRun("incident", "update", "INC-1", "--status", "identified", "--text", "Supplier has isolated the affected systems")
	h.mustRun("brief", "ministers-daily")
	h.mustRun("preview", "--briefing", "ministers-daily", "--subscriber", "minister-health")
	h.mustRun("incident", "resolve", "INC-1", "--text", "Service restored in all four nations")
	h.mustRun("tokens", "create", "--name", "ci", "--role", "operator")
	h.base.stdin = strings.NewReader("correct horse battery staple\n")
	h.mustRun("users", "add", "j.smith", "--role", "viewer")
	h.base.stdin = nil
}

// rawDB opens a database.url with database/sql, read-only where it can be.
func rawDB(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if p, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+p+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	} else {
		db, err = sql.Open("pgx", dbURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// tableCounts counts the rows of every table of the SQLite file at path,
// and of the same tables in dbURL.
func tableCounts(t *testing.T, path, dbURL string) (src, dst map[string]int) {
	t.Helper()
	lite := rawDB(t, "sqlite:"+path)
	other := rawDB(t, dbURL)
	rows, err := lite.Query(`SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	src, dst = map[string]int{}, map[string]int{}
	for _, tb := range tables {
		var a, b int
		if err := lite.QueryRow(`SELECT COUNT(*) FROM ` + tb).Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := other.QueryRow(`SELECT COUNT(*) FROM ` + tb).Scan(&b); err != nil {
			t.Fatal(err)
		}
		src[tb], dst[tb] = a, b
	}
	return src, dst
}

// reportedCounts reads migrate-store's table: table → source, copied, target.
func reportedCounts(out string) map[string][3]int {
	m := map[string][3]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		var n [3]int
		ok := true
		for i := range n {
			v, err := strconv.Atoi(f[i+1])
			n[i], ok = v, ok && err == nil
		}
		if ok {
			m[f[0]] = n
		}
	}
	return m
}

// pointConfigAt makes the harness's config use database.url from
// $CRIER_DATABASE_URL, set to dbURL.
func pointConfigAt(h *harness, dbURL string) {
	h.t.Helper()
	raw, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	const line = "  url: sqlite:crier.db\n"
	if !strings.Contains(string(raw), line) {
		h.t.Fatalf("the example config has no line %q", line)
	}
	h.write("config.yaml", strings.Replace(string(raw), line, "  url: ${CRIER_DATABASE_URL}\n", 1))
	h.setenv("CRIER_DATABASE_URL", dbURL)
}

// TestCLI_MigrateStore_AfterWalkthrough runs the README walkthrough on the
// example config (SQLite), then crier migrate-store into a new database
// (a PostgreSQL schema; a SQLite file): every table has as many rows on
// both sides, crier log --json is the same before and after, new
// broadcasts plan on the new database with new ids, no password is ever
// printed, and a second copy into the now-used database is refused.
func TestCLI_MigrateStore_AfterWalkthrough(t *testing.T) {
	for _, target := range []string{"postgres", "sqlite"} {
		t.Run(target, func(t *testing.T) {
			var dbURL string
			if target == "postgres" {
				dbURL = withPassword(t, storetest.Postgres(t))
			} else {
				dbURL = "sqlite:" + filepath.Join(t.TempDir(), "moved.db")
			}
			h := exampleHarness(t)
			readmeWalkthrough(h)
			before := h.mustRun("log", "--json").stdout
			beforeBodies := h.mustRun("log", "--json", "--show-body").stdout
			beforeIncident := h.mustRun("incident", "show", "INC-1").stdout
			if len(parseJSONLines(t, before)) < 10 {
				t.Fatalf("the walkthrough logged too little to compare:\n%s", before)
			}

			h.setenv("CRIER_NEW_DATABASE_URL", dbURL)
			r := h.mustRun("migrate-store", "--to-env", "CRIER_NEW_DATABASE_URL")
			t.Logf("crier migrate-store:\n%s%s", r.stderr, r.stdout)
			assertNoSecrets(t, "migrate-store's output", r.stdout+r.stderr, migratePassword)
			for _, want := range []string{"database.url of", "copied", "every table holds as many rows", "next:", "keep ", "as a backup"} {
				if !strings.Contains(r.stdout+r.stderr, want) {
					t.Errorf("migrate-store does not say %q", want)
				}
			}

			src, dst := tableCounts(t, filepath.Join(h.dir, "crier.db"), dbURL)
			reported := reportedCounts(r.stdout)
			for table, n := range src {
				if dst[table] != n {
					t.Errorf("%s: %d rows in SQLite, %d after the copy", table, n, dst[table])
				}
				if got, want := reported[table], [3]int{n, n, n}; got != want {
					t.Errorf("%s: migrate-store reports %v (source, copied, target), want %v", table, got, want)
				}
				if table == "deliveries" && n == 0 {
					t.Error("no deliveries were copied")
				}
			}
			if len(src) < 19 {
				t.Errorf("only %d tables compared", len(src))
			}

			pointConfigAt(h, dbURL)
			if got := h.mustRun("log", "--json").stdout; got != before {
				t.Errorf("crier log --json differs after the move:\nbefore:\n%s\nafter:\n%s", before, got)
			}
			if got := h.mustRun("log", "--json", "--show-body").stdout; got != beforeBodies {
				t.Error("crier log --json --show-body differs after the move")
			}
			if got := h.mustRun("incident", "show", "INC-1").stdout; got != beforeIncident {
				t.Errorf("crier incident show INC-1 differs after the move:\nbefore:\n%s\nafter:\n%s", beforeIncident, got)
			}

			// New rows take new ids: the sequences are past the ids copied.
			var maxID int64
			for _, row := range parseJSONLines(t, before) {
				maxID = max(maxID, row.ID)
			}
			h.setNow(testEpoch().Add(time.Hour))
			h.mustRun("send", "--audience", "ministers", "--channels", "ministers-email", "--subject", "After the move",
				"--body", "Sent from the new database")
			if r := h.mustRun("incident", "open", "--title", "Second incident", "--severity", "minor",
				"--impact", "Referrals@england=degraded:wait"); !strings.Contains(r.stdout, "INC-2") {
				t.Errorf("the first incident on the new database is not INC-2:\n%s", r.stdout)
			}
			var fresh int
			for _, row := range h.logRows() {
				if row.ID > maxID {
					fresh++
					if row.Status == "failed" {
						t.Errorf("delivery %d on the new database failed: %s", row.ID, row.Detail)
					}
				}
			}
			if fresh == 0 {
				t.Error("nothing was planned on the new database")
			}
			rows := h.logRows()
			ids := make([]int64, len(rows))
			for i, row := range rows {
				ids[i] = row.ID
			}
			slices.Sort(ids)
			if len(slices.Compact(ids)) != len(rows) {
				t.Error("two deliveries share an id on the new database")
			}

			// The target is in use now: copying the same source again, or
			// another database, into it is refused.
			r = h.run("migrate-store", "--from", "sqlite:"+filepath.Join(h.dir, "crier.db"), "--to-env", "CRIER_NEW_DATABASE_URL")
			if r.code != 2 || !strings.Contains(r.stderr, "a copy of it made before") {
				t.Errorf("the same copy again: exit %d, want 2 and a refusal saying it was copied before:\n%s", r.code, r.stderr)
			}
			other := exampleHarness(t)
			openWalkthroughIncident(other)
			other.setenv("CRIER_NEW_DATABASE_URL", dbURL)
			r = other.run("migrate-store", "--to-env", "CRIER_NEW_DATABASE_URL")
			if r.code != 2 || !strings.Contains(r.stderr, "already holds crier data") || !strings.Contains(r.stderr, "deliveries: ") {
				t.Errorf("another database into a used one: exit %d, want 2 and a refusal naming what it holds:\n%s", r.code, r.stderr)
			}
			assertNoSecrets(t, "the refusals", r.stdout+r.stderr, migratePassword)
		})
	}
}

// crier migrate-store refuses a source a crier serve holds, and writes
// nothing to the target.
func TestCLI_MigrateStore_RefusesHeldSource(t *testing.T) {
	h := exampleHarness(t)
	openWalkthroughIncident(h)
	path := filepath.Join(h.dir, "crier.db")
	st, err := store.Open(context.Background(), path, store.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Heartbeat(context.Background(), "server", "elsewhere pid 4242", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	st.Close()
	target := filepath.Join(t.TempDir(), "moved.db")
	r := h.run("migrate-store", "--to", "sqlite:"+target)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2 (refused):\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"refused", "crier serve (elsewhere pid 4242) is running", "stop crier serve"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, r.stderr)
		}
	}
	if n := countTable(t, "sqlite:"+target, "subscribers"); n != 0 {
		t.Errorf("the target has %d subscribers after a refused copy", n)
	}

	// Once the server's heartbeat has run out, the copy goes ahead.
	h.setNow(testEpoch().Add(time.Minute))
	h.mustRun("migrate-store", "--to", "sqlite:"+target)
}

func countTable(t *testing.T, dbURL, table string) int {
	t.Helper()
	var n int
	if err := rawDB(t, dbURL).QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Bad flags are usage errors that open nothing; a URL with a password is
// never printed, even when the database cannot be reached.
func TestCLI_MigrateStore_Flags(t *testing.T) {
	h := exampleHarness(t)
	openWalkthroughIncident(h)
	h.setenv("EMPTY", "")
	missing := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"migrate-store"}, "needs a target"},
		{"two targets", []string{"migrate-store", "--to", "sqlite:x.db", "--to-env", "X"}, "--to and --to-env are both given"},
		{"unset env", []string{"migrate-store", "--to-env", "EMPTY"}, "EMPTY is not set or empty"},
		{"not a database", []string{"migrate-store", "--to", "mysql://u:" + migratePassword + "@h/db"}, "sqlite:PATH or postgres://"},
		{"missing source", []string{"migrate-store", "--from", "sqlite:" + missing, "--to", "sqlite:" + filepath.Join(t.TempDir(), "t.db")}, "cannot be read"},
		{"same database", []string{"migrate-store", "--from", "sqlite:" + filepath.Join(h.dir, "crier.db"), "--to", "sqlite:" + filepath.Join(h.dir, "crier.db")}, "same database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s%s", r.code, tc.want, r.stdout, r.stderr)
			}
			assertNoSecrets(t, "the output", r.stdout+r.stderr, migratePassword)
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a missing source was created (%v)", err)
	}

	// A password on the command line works but earns a note, and is
	// never printed, even in the error of a database that does not answer.
	r := h.run("migrate-store", "--to", "postgres://crier:"+migratePassword+"@127.0.0.1:1/crier?connect_timeout=2")
	if r.code == 0 {
		t.Fatalf("a copy to a closed port succeeded:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "--to-env NAME reads it from the environment") {
		t.Errorf("no note about the password on the command line:\n%s", r.stderr)
	}
	assertNoSecrets(t, "the output", r.stdout+r.stderr, migratePassword)
}

// crier backup on PostgreSQL says to use pg_dump, as a refusal (exit 2),
// without the password, and writes no file.
func TestCLI_Backup_PostgresSaysPgDump(t *testing.T) {
	dbURL := withPassword(t, storetest.Postgres(t))
	h := exampleHarness(t)
	pointConfigAt(h, dbURL)
	dst := filepath.Join(t.TempDir(), "backup.db")
	r := h.run("backup", dst)
	if r.code != 2 {
		t.Errorf("crier backup on PostgreSQL: exit %d, want 2", r.code)
	}
	if !strings.Contains(r.stderr, "pg_dump") || !strings.HasPrefix(r.stderr, "crier: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("crier backup on PostgreSQL does not say, in one line, to use pg_dump:\n%s", r.stderr)
	}
	assertNoSecrets(t, "crier backup's output", r.stdout+r.stderr, migratePassword)
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("crier backup on PostgreSQL wrote %s (%v)", dst, err)
	}
}
