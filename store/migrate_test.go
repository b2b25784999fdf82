package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store/sqlite"
	"github.com/crier-dev/crier/store/storetest"
)

// schemaOf lists every table and index with its SQL, as SQLite keeps it.
func schemaOf(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT name, COALESCE(sql,'') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			t.Fatal(err)
		}
		out[name] = q
	}
	return out
}

// A database of the first release (schema v1) opens under this version:
// it is upgraded in place, keeps its rows, and ends with exactly the
// schema a new database gets.
func TestOpen_UpgradesFirstReleaseDatabase(t *testing.T) {
	if storetest.Engine() != "sqlite" {
		t.Skip("the upgrade of a SQLite file")
	}
	ctx := context.Background()
	old := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", sqlite.DSN(old, false))
	if err != nil {
		t.Fatal(err)
	}
	schemaV1, err := os.ReadFile(filepath.Join("sqlite", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(schemaV1)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, q := range []string{
		`PRAGMA user_version = 1`,
		`INSERT INTO triggers(id,key,kind,name,planned,created_at) VALUES(1,'send:old','send','old',2,` + itoa(now) + `)`,
		`INSERT INTO deliveries(trigger_id,subscriber_id,channel,kind,address,status,provider_id,created_at,updated_at)
			VALUES(1,'ann','sms','sms','+447400123456','sent','SM123',` + itoa(now) + `,` + itoa(now) + `),
			      (1,'ann','email','email','ann@example.org','sent','<abc@crier>',` + itoa(now) + `,` + itoa(now) + `)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := Open(ctx, old)
	if err != nil {
		t.Fatalf("Open of a v1 database: %v", err)
	}
	defer st.Close()
	var v int
	if err := st.w.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version = %d, %v; want %d", v, err, SchemaVersion)
	}
	tr := &Trigger{Key: "send:old"}
	if err := st.Write(ctx, func(tx *Tx) error { _, err := tx.CreateTrigger(tr); return err }); err != nil {
		t.Fatal(err)
	}
	if tr.Planned != 2 || !tr.PlanUntil.IsZero() || tr.PlanSpec != "" {
		t.Errorf("the old trigger after the upgrade: %+v, want planned 2 and no planning in progress", tr)
	}
	id, err := st.ReceiptDelivery(ctx, "", "SM123")
	if err != nil || id == 0 {
		t.Errorf("the old SMS found by its provider id: %d, %v", id, err)
	}

	fresh, err := Open(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	got, want := schemaOf(t, st.w.db), schemaOf(t, fresh.w.db)
	for name, q := range want {
		if got[name] != q {
			t.Errorf("%s after the upgrade:\n%s\nin a new database:\n%s", name, got[name], q)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is left over after the upgrade", name)
		}
	}
	// What v2 brought, in the upgraded file itself.
	for name, part := range map[string]string{
		"triggers":            "plan_until INTEGER NOT NULL DEFAULT 0",
		"triggers_planning":   "ON triggers(plan_until) WHERE plan_until != 0",
		"subscribers_locale":  "ON subscribers(locale, id)",
		"deliveries_provider": "WHERE provider_id != '' AND kind = 'sms'",
	} {
		if !strings.Contains(got[name], part) {
			t.Errorf("%s after the upgrade = %q, want it to contain %q", name, got[name], part)
		}
	}
	var n int
	if err := st.w.db.QueryRow(`SELECT COUNT(*) FROM deliveries WHERE trigger_id=1`).Scan(&n); err != nil || n != 2 {
		t.Errorf("the old deliveries after the upgrade: %d, %v; want both", n, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A PostgreSQL database made at schema v3 (the first PostgreSQL release)
// opens under this version: it is upgraded in place and keeps its rows
// and its installation id. (A new database is made the same way, v3 and
// then every upgrade; TestSchema_SameOnBothEngines compares the result
// with SQLite's.)
func TestOpen_UpgradesPostgresV3Database(t *testing.T) {
	ctx := context.Background()
	oldURL := storetest.Postgres(t)
	db, err := sql.Open("pgx", oldURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schemaV3, err := os.ReadFile(filepath.Join("postgres", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(schemaV3),
		`CREATE TABLE crier_schema (version BIGINT NOT NULL)`,
		`INSERT INTO crier_schema(version) VALUES(3)`,
		`INSERT INTO meta(key,value) VALUES('installation','0123456789abcdef0123456789abcdef')`,
		`INSERT INTO triggers(id,key,kind,name,planned,created_at) VALUES(1,'send:old','send','old',0,1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	st, err := OpenURL(ctx, oldURL)
	if err != nil {
		t.Fatalf("Open of a v3 database: %v", err)
	}
	defer st.Close()
	var v int
	if err := st.w.db.QueryRowContext(ctx, `SELECT version FROM crier_schema`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("version = %d, %v; want %d", v, err, SchemaVersion)
	}
	if st.Installation() != "0123456789abcdef0123456789abcdef" {
		t.Errorf("installation after the upgrade = %q, want the old one", st.Installation())
	}
	if tr, ok, err := st.TriggerByKey(ctx, "send:old"); err != nil || !ok || tr.ID != 1 {
		t.Errorf("the old trigger after the upgrade: %+v, %v, %v", tr, ok, err)
	}
	if _, wait, err := st.BeginSignin(ctx, time.Minute, SigninLimit{Key: "addr:192.0.2.1", Max: 1}); err != nil || wait != 0 {
		t.Errorf("counting a sign-in after the upgrade: wait %v, %v", wait, err)
	}
}
