package store_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// TestConformance_Postgres runs every test of this package again on
// PostgreSQL: the store's tests are its conformance suite, and each runs
// on a real SQLite file here and on a real PostgreSQL schema there (see
// storetest). Only tests of the SQLite file itself (its upgrade from v1,
// VACUUM INTO backups, file errors) are skipped there.
func TestConformance_Postgres(t *testing.T) {
	if storetest.Engine() != "sqlite" {
		t.Skip("this is the run on PostgreSQL")
	}
	storetest.Postgres(t) // skipped (or failed, in CI) without a server
	cmd := exec.Command(os.Args[0], "-test.run", ".", "-test.skip", "^TestConformance_Postgres$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), "CRIER_TEST_ENGINE=postgres")
	out, err := cmd.CombinedOutput()
	var passed, skipped []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "--- PASS: "); ok {
			passed = append(passed, strings.Fields(name)[0])
		}
		if name, ok := strings.CutPrefix(line, "--- SKIP: "); ok {
			skipped = append(skipped, strings.Fields(name)[0])
		}
	}
	if err != nil {
		t.Fatalf("the store's tests on PostgreSQL: %v\n%s", err, out)
	}
	if len(passed) < 50 {
		t.Fatalf("only %d tests passed on PostgreSQL:\n%s", len(passed), out)
	}
	t.Logf("%d behaviours passed on PostgreSQL; skipped there: %s", len(passed), strings.Join(skipped, ", "))
}

// The two engines' schemas have the same tables, columns and indexes.
func TestSchema_SameOnBothEngines(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(ctx, filepath.Join(t.TempDir(), "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pgURL := storetest.Postgres(t)
	pg, err := store.OpenURL(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	liteDB, err := sql.Open("sqlite", "file:"+lite.Path()+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer liteDB.Close()
	pgDB, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pgDB.Close()
	list := func(db *sql.DB, q string) []string {
		t.Helper()
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, a+"."+b)
		}
		slices.Sort(out)
		return out
	}
	liteCols := list(liteDB, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type='table' AND m.name NOT LIKE 'sqlite_%'`)
	pgCols := list(pgDB, `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema=current_schema() AND table_name != 'crier_schema'
		AND NOT (table_name='delivery_events' AND column_name='id')`)
	if !slices.Equal(liteCols, pgCols) {
		t.Errorf("columns differ:\nSQLite     %v\nPostgreSQL %v", liteCols, pgCols)
	}
	liteIdx := list(liteDB, `SELECT tbl_name, name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL`)
	pgIdx := list(pgDB, `SELECT tablename, indexname FROM pg_indexes WHERE schemaname=current_schema() AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'`)
	if !slices.Equal(liteIdx, pgIdx) {
		t.Errorf("indexes differ:\nSQLite     %v\nPostgreSQL %v", liteIdx, pgIdx)
	}
}

// A PostgreSQL database made by a newer crier (a higher crier_schema
// version) is refused, not damaged; one that holds crier's tables without
// a version is not taken for crier's own.
func TestPostgres_RefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := storetest.Postgres(t)
	st, err := store.OpenURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE crier_schema SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if st, err := store.OpenURL(ctx, url); err == nil || !strings.Contains(err.Error(), "newer than this crier") {
		if st != nil {
			st.Close()
		}
		t.Fatalf("OpenURL of a newer schema: %v, want a refusal", err)
	}
	if _, err := db.Exec(`DROP TABLE crier_schema`); err != nil {
		t.Fatal(err)
	}
	if st, err := store.OpenURL(ctx, url); err == nil || !strings.Contains(err.Error(), "no crier_schema version") {
		if st != nil {
			st.Close()
		}
		t.Fatalf("OpenURL of tables without a version: %v, want a refusal", err)
	}
}
