package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store/storetest"
)

// copyNow is the clock of the copy tests.
var copyNow = time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)

func openForCopy(tb testing.TB, url string) *Store {
	tb.Helper()
	st, err := OpenURL(context.Background(), url, WithClock(func() time.Time { return copyNow }))
	if err != nil {
		tb.Fatalf("open %s: %v", url, err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func sqliteURL(tb testing.TB) string {
	return "sqlite:" + filepath.Join(tb.TempDir(), "crier.db")
}

// namesEngines skips a test that picks its engines itself in the run of
// the whole package on PostgreSQL (TestConformance_Postgres).
func namesEngines(tb testing.TB) {
	tb.Helper()
	if storetest.Engine() != "sqlite" {
		tb.Skip("this test names its engines itself")
	}
}

// fill writes n rows into every table crier copies, from the database's
// own catalog: every column gets a value of its own (ids and the ids that
// refer to them match, so foreign keys hold), row 1 an empty blob and a
// NULL where a column allows one, and on SQLite two texts of deliveries
// hold what PostgreSQL cannot store (invalid UTF-8, a NUL byte).
func fill(tb testing.TB, s *Store, n int) {
	tb.Helper()
	ctx := context.Background()
	cat, err := s.catalog(ctx, s.r)
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range copyTables {
		cols := cat[t]
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = quote(c.name)
		}
		q := `INSERT INTO ` + t + ` (` + strings.Join(names, ", ") + `) VALUES (` + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + `)`
		for i := 1; i <= n; i++ {
			args := make([]any, len(cols))
			for k, c := range cols {
				args[k] = fillValue(t, c, i, k, s.utf8)
			}
			if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
				tb.Fatalf("fill %s row %d: %v", t, i, err)
			}
		}
	}
}

func fillValue(table string, c column, i, k int, utf8Only bool) any {
	ref := c.name == "id" || strings.HasSuffix(c.name, "_id")
	switch {
	case table == "deliveries" && c.name == "lease_until":
		return int64(0) // not claimed: the source is idle
	case table == "deliveries" && c.name == "message_id" && i == 1:
		return nil
	case table == "deliveries" && c.name == "detail" && i == 2 && !utf8Only:
		return "bad \xff byte"
	case table == "deliveries" && c.name == "detail" && i == 3 && !utf8Only:
		return "nul \x00 byte"
	}
	switch c.class {
	case "int":
		if ref {
			return int64(i)
		}
		return int64(i*1000 + k)
	case "text":
		if ref {
			return fmt.Sprint(i)
		}
		return fmt.Sprintf("%s %d ŵ", c.name, i)
	case "blob":
		if i == 1 {
			return []byte{}
		}
		return []byte(fmt.Sprintf("%s %d", c.name, i))
	}
	panic("column class " + c.class)
}

// dump is every row of every table, as sorted strings, read with the
// columns of plans (the source's or the target's side).
func dump(tb testing.TB, s *Store, plans []tablePlan, source, repair bool) map[string][]string {
	tb.Helper()
	out := map[string][]string{}
	for _, p := range plans {
		exprs := make([]string, len(p.cols))
		for i, cp := range p.cols {
			exprs[i] = cp.dstExpr()
			if source {
				exprs[i] = cp.srcExpr()
			}
		}
		rows, err := s.r.db.Query(`SELECT ` + strings.Join(exprs, ", ") + ` FROM ` + p.name)
		if err != nil {
			tb.Fatal(err)
		}
		vals := make([]any, len(exprs))
		ptrs := make([]any, len(exprs))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				switch x := v.(type) {
				case nil:
					b.WriteString("NULL")
				case []byte:
					fmt.Fprintf(&b, "x'%x'", x)
				case string:
					if repair {
						x = strings.ReplaceAll(strings.ToValidUTF8(x, "\uFFFD"), "\x00", "\uFFFD")
					}
					fmt.Fprintf(&b, "%q", x)
				default:
					fmt.Fprintf(&b, "%v", x)
				}
				if i < len(vals)-1 {
					b.WriteString(" | ")
				}
			}
			out[p.name] = append(out[p.name], b.String())
		}
		if err := rows.Err(); err != nil {
			tb.Fatal(err)
		}
		rows.Close()
		slices.Sort(out[p.name])
	}
	return out
}

// plansOf is how a copy from src to dst matches their columns.
func plansOf(tb testing.TB, src, dst *Store) []tablePlan {
	tb.Helper()
	ctx := context.Background()
	scat, err := src.catalog(ctx, src.r)
	if err != nil {
		tb.Fatal(err)
	}
	dcat, err := dst.catalog(ctx, dst.r)
	if err != nil {
		tb.Fatal(err)
	}
	plans, err := planCopy(src, scat, dst, dcat)
	if err != nil {
		tb.Fatal(err)
	}
	return plans
}

// copyAndCompare copies src into dst in batches of 7 and checks every
// row of every table arrived as it was.
func copyAndCompare(t *testing.T, src, dst *Store, rows int, wantRepaired int64) CopyResult {
	t.Helper()
	plans := plansOf(t, src, dst)
	want := dump(t, src, plans, true, dst.utf8)
	srcInstallation := src.Installation()
	var batches int
	res, err := Copy(context.Background(), dst, src, CopyOptions{BatchRows: 7, Progress: func(string, int64, int64) { batches++ }})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if batches < len(copyTables)*(rows/7) {
		t.Errorf("%d batches reported for %d tables of %d rows in batches of 7", batches, len(copyTables), rows)
	}
	got := dump(t, dst, plans, false, false)
	for _, p := range plans {
		if !slices.Equal(got[p.name], want[p.name]) {
			t.Errorf("%s differs after the copy:\nsource %q\ntarget %q", p.name, want[p.name], got[p.name])
		}
	}
	if len(res.Tables) != len(copyTables) {
		t.Errorf("%d tables reported, want %d", len(res.Tables), len(copyTables))
	}
	for _, tc := range res.Tables {
		n := int64(rows)
		if tc.Table == "meta" {
			n++ // and the installation
		}
		if tc.Source != n || tc.Copied != n || tc.Target != n {
			t.Errorf("%s: source %d, copied %d, target %d; want %d each", tc.Table, tc.Source, tc.Copied, tc.Target, n)
		}
	}
	if res.Repaired != wantRepaired {
		t.Errorf("%d values repaired, want %d", res.Repaired, wantRepaired)
	}
	if res.Installation != srcInstallation || dst.Installation() != srcInstallation {
		t.Errorf("installation: result %s, target %s; want the source's %s", res.Installation, dst.Installation(), srcInstallation)
	}
	return res
}

// Every column of every table arrives as it was, ids included, SQLite to
// SQLite.
func TestCopy_SQLiteToSQLite_EveryColumn(t *testing.T) {
	namesEngines(t)
	src := openForCopy(t, sqliteURL(t))
	fill(t, src, 23)
	dstURL := sqliteURL(t)
	dst := openForCopy(t, dstURL)
	copyAndCompare(t, src, dst, 23, 0)
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openForCopy(t, dstURL).Installation(); got != src.Installation() {
		t.Errorf("reopened, the target's installation is %s, want the source's %s", got, src.Installation())
	}
}

// SQLite to PostgreSQL and back: every column arrives (delivery_events'
// rowid becomes PostgreSQL's id and back), what PostgreSQL cannot hold is
// repaired and counted, and each identity sequence is past the ids copied.
func TestCopy_SQLiteToPostgresAndBack_EveryColumn(t *testing.T) {
	namesEngines(t)
	const n = 23
	src := openForCopy(t, sqliteURL(t))
	fill(t, src, n)
	pg := openForCopy(t, storetest.Postgres(t))
	copyAndCompare(t, src, pg, n, 2)

	var identities int
	for _, p := range plansOf(t, src, pg) {
		for _, cp := range p.cols {
			if !cp.dst.identity {
				continue
			}
			identities++
			var next int64
			if err := pg.w.db.QueryRow(`SELECT nextval(pg_get_serial_sequence($1, $2))`, p.name, cp.dst.name).Scan(&next); err != nil {
				t.Fatal(err)
			}
			if next != n+1 {
				t.Errorf("after the copy the next %s.%s is %d, want %d", p.name, cp.dst.name, next, n+1)
			}
		}
	}
	if identities != 6 {
		t.Errorf("%d identity columns on PostgreSQL, want 6 (triggers, messages, deliveries, inbound, delivery_events, signin_failures)", identities)
	}

	back := openForCopy(t, sqliteURL(t))
	copyAndCompare(t, pg, back, n, 0)
}

// PostgreSQL to PostgreSQL (another schema) works the same way.
func TestCopy_PostgresToPostgres(t *testing.T) {
	namesEngines(t)
	src := openForCopy(t, storetest.Postgres(t))
	fill(t, src, 9)
	dst := openForCopy(t, storetest.Postgres(t))
	copyAndCompare(t, src, dst, 9, 0)
}

// The tables copied are the schema's tables, on both engines: a new
// table cannot be left behind without this test saying so.
func TestCopy_TablesAreTheSchema(t *testing.T) {
	namesEngines(t)
	check := func(s *Store) {
		cat, err := s.catalog(context.Background(), s.r)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for name := range cat {
			tables = append(tables, name)
		}
		slices.Sort(tables)
		want := slices.Sorted(slices.Values(copyTables))
		if !slices.Equal(tables, want) {
			t.Errorf("%s has tables %v; migrate-store copies %v", s.Engine(), tables, want)
		}
	}
	check(openForCopy(t, sqliteURL(t)))
	check(openForCopy(t, storetest.Postgres(t)))
}

func asRefused(t *testing.T, err error, want ...string) {
	t.Helper()
	var r *CopyRefused
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}

// assertUntouched fails unless dst holds nothing but its own installation.
func assertUntouched(t *testing.T, dst *Store, installation string) {
	t.Helper()
	if err := dst.checkEmpty(context.Background(), dst.r); err != nil {
		t.Errorf("the target was written: %v", err)
	}
	var id string
	if err := dst.r.QueryRowContext(context.Background(), `SELECT value FROM meta WHERE key='installation'`).Scan(&id); err != nil || id != installation {
		t.Errorf("the target's installation is %q (%v), want its own %s", id, err, installation)
	}
}

// A target holding any crier row is refused, and what it holds is named;
// nothing is written.
func TestCopy_RefusesNonEmptyTarget(t *testing.T) {
	src := openForCopy(t, sqliteURL(t))
	fill(t, src, 3)
	dst := openForCopy(t, storetest.URL(t))
	ctx := context.Background()
	if _, err := dst.w.ExecContext(ctx, `INSERT INTO subscribers(id, name, source, created_at, updated_at) VALUES('a', 'A', 'config', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.w.ExecContext(ctx, `INSERT INTO api_tokens(name, role, selector, hash, created_at) VALUES('ci', 'admin', 'abc', ?, 1)`, []byte{0}); err != nil {
		t.Fatal(err)
	}
	_, err := Copy(ctx, dst, src, CopyOptions{})
	asRefused(t, err, "already holds crier data", "subscribers: 1 rows", "api_tokens: 1 rows")
	if n := countRows(t, dst, "subscribers"); n != 1 {
		t.Errorf("the target has %d subscribers after a refused copy, want its 1", n)
	}
	if n := countRows(t, dst, "deliveries"); n != 0 {
		t.Errorf("the target has %d deliveries after a refused copy", n)
	}

	// A key of meta other than the installation is data too.
	dst2 := openForCopy(t, storetest.URL(t))
	if _, err := dst2.w.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('other', 'x')`); err != nil {
		t.Fatal(err)
	}
	_, err = Copy(ctx, dst2, src, CopyOptions{})
	asRefused(t, err, "meta: 1 rows")
}

func countRows(tb testing.TB, s *Store, table string) int64 {
	tb.Helper()
	var n int64
	if err := s.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// A source a crier process holds is refused with what holds it; nothing
// is written to the target.
func TestCopy_RefusesHeldSource(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		hold func(*Store) error
		dead func(string) bool
		want []string
	}{
		{"server alive", func(s *Store) error { return s.Heartbeat(ctx, "server", "host1 pid 42", 10*time.Second) },
			nil, []string{"crier serve (host1 pid 42) is running", "stop crier serve"}},
		{"node alive", func(s *Store) error { return s.Heartbeat(ctx, "node:host2 pid 7 ab", "host2 pid 7 ab", time.Minute) },
			nil, []string{"(host2 pid 7 ab) is dispatching"}},
		{"deliveries claimed", func(s *Store) error {
			_, err := s.w.ExecContext(ctx, `UPDATE deliveries SET claimed_by='host3 pid 9 cd', lease_until=? WHERE id <= 2`, ms(copyNow.Add(-time.Hour)))
			return err
		}, nil, []string{"2 deliveries are claimed or being sent", "host3 pid 9 cd", "SIGTERM"}},
		{"plan under way", func(s *Store) error {
			_, err := s.w.ExecContext(ctx, `UPDATE triggers SET plan_until=? WHERE id = 3`, ms(copyNow.Add(time.Minute)))
			return err
		}, nil, []string{"trigger key 3 ŵ is being planned"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := openForCopy(t, storetest.URL(t))
			fill(t, src, 3)
			if err := tc.hold(src); err != nil {
				t.Fatal(err)
			}
			dst := openForCopy(t, sqliteURL(t))
			own := dst.Installation()
			_, err := Copy(ctx, dst, src, CopyOptions{Dead: tc.dead})
			asRefused(t, err, append([]string{"is in use"}, tc.want...)...)
			assertUntouched(t, dst, own)
		})
	}

	// A heartbeat whose process is known to be gone does not hold it.
	src := openForCopy(t, storetest.URL(t))
	fill(t, src, 3)
	if err := src.Heartbeat(ctx, "server", "host1 pid 42", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	dst := openForCopy(t, sqliteURL(t))
	if _, err := Copy(ctx, dst, src, CopyOptions{Dead: func(h string) bool { return h == "host1 pid 42" }}); err != nil {
		t.Errorf("a dead server's heartbeat: %v", err)
	}
	// An expired heartbeat and an unfinished plan whose lease ran out (the
	// target's crier serve finishes it) do not either.
	src2 := openForCopy(t, storetest.URL(t))
	fill(t, src2, 3)
	if err := src2.Heartbeat(ctx, "server", "host1 pid 42", -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := src2.w.ExecContext(ctx, `UPDATE triggers SET plan_until=? WHERE id = 3`, ms(copyNow.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, openForCopy(t, sqliteURL(t)), src2, CopyOptions{}); err != nil {
		t.Errorf("an expired heartbeat and a stale plan lease: %v", err)
	}
}

// Copying a database into itself is refused.
func TestCopy_RefusesSameDatabase(t *testing.T) {
	url := storetest.URL(t)
	a := openForCopy(t, url)
	b := openForCopy(t, url)
	_, err := Copy(context.Background(), b, a, CopyOptions{})
	asRefused(t, err, "is installation "+a.Installation()+" already", "the same database, or a copy of it made before")
}

// A copy that fails part-way leaves the target as it was: one transaction.
func TestCopy_FailureWritesNothing(t *testing.T) {
	src := openForCopy(t, sqliteURL(t))
	fill(t, src, 30)
	dst := openForCopy(t, storetest.URL(t))
	own := dst.Installation()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Copy(ctx, dst, src, CopyOptions{BatchRows: 10, Progress: func(table string, done, _ int64) {
		if table == "deliveries" && done >= 10 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("Copy succeeded with its context cancelled part-way")
	}
	var r *CopyRefused
	if errors.As(err, &r) {
		t.Fatalf("a failure reported as a refusal: %v", err)
	}
	if dst.Installation() != own {
		t.Errorf("the target's store took the source's installation after a failed copy")
	}
	assertUntouched(t, dst, own)
	// And the copy can simply be run again.
	if _, err := Copy(context.Background(), dst, src, CopyOptions{}); err != nil {
		t.Fatalf("the copy again after a failure: %v", err)
	}
	if n := countRows(t, dst, "deliveries"); n != 30 {
		t.Errorf("%d deliveries after the second copy, want 30", n)
	}
}
