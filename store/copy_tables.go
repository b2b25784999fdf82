package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// column is one column as an engine's catalog describes it.
type column struct {
	name string
	// class is int, text or blob (INTEGER/BIGINT, TEXT, BLOB/BYTEA).
	class    string
	notNull  bool
	identity bool // a PostgreSQL identity column, or SQLite's INTEGER PRIMARY KEY
}

// catalog is each table's columns, in the engine's order, read from the
// database itself (SQLite's pragma_table_info, PostgreSQL's
// information_schema): the columns copied are the columns there are.
type catalog map[string][]column

func (s *Store) catalog(ctx context.Context, q querier) (catalog, error) {
	query := `SELECT table_name, column_name, data_type, is_nullable = 'NO', is_identity = 'YES'
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name != 'crier_schema'
		ORDER BY table_name, ordinal_position`
	if s.eng.Name() == "sqlite" {
		query = `SELECT m.name, p.name, p.type, p."notnull", p.pk = 1 AND p.type = 'INTEGER' AND
			(SELECT COUNT(*) FROM pragma_table_info(m.name) k WHERE k.pk > 0) = 1
			FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: read the tables of %s: %w", s.Path(), err)
	}
	defer rows.Close()
	cat := catalog{}
	for rows.Next() {
		var table, typ string
		var c column
		if err := rows.Scan(&table, &c.name, &typ, &c.notNull, &c.identity); err != nil {
			return nil, fmt.Errorf("store: read the tables of %s: %w", s.Path(), err)
		}
		c.class = typeClass(typ)
		cat[table] = append(cat[table], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the tables of %s: %w", s.Path(), err)
	}
	return cat, nil
}

// typeClass is what a column's declared type holds on either engine.
func typeClass(typ string) string {
	switch t := strings.ToUpper(typ); {
	case strings.Contains(t, "INT"):
		return "int"
	case t == "TEXT" || strings.Contains(t, "CHAR"):
		return "text"
	case t == "BLOB" || t == "BYTEA":
		return "blob"
	default:
		return strings.ToLower(typ)
	}
}

// tablePlan is how one table is copied: its columns on both sides.
type tablePlan struct {
	name string
	cols []colPair
}

// colPair is one column as it is read from the source and written to the
// target. The one difference the engines may have: PostgreSQL numbers a
// table SQLite keeps in rowid order with an identity column of its own
// (delivery_events.id), which is SQLite's rowid on the other side.
type colPair struct {
	src, dst column
}

func (p colPair) srcExpr() string { return exprOf(p.src) }
func (p colPair) dstExpr() string { return exprOf(p.dst) }

func exprOf(c column) string {
	if c.name == "rowid" {
		return "rowid"
	}
	return quote(c.name)
}

// quote is a column name as an identifier on either engine.
func quote(name string) string { return `"` + name + `"` }

// rowid stands for SQLite's implicit row number.
var rowid = column{name: "rowid", class: "int", notNull: true, identity: true}

// planCopy matches every table and column of the source with the
// target's, and refuses when they differ: a column missing on one side
// would otherwise be lost without a word.
func planCopy(src *Store, scat catalog, dst *Store, dcat catalog) ([]tablePlan, error) {
	var problems []string
	for _, side := range []struct {
		st  *Store
		cat catalog
	}{{src, scat}, {dst, dcat}} {
		for t := range side.cat {
			// A PostgreSQL schema may hold tables of others; a SQLite file
			// is crier's alone, so a table unknown there is crier's own.
			if !slices.Contains(copyTables, t) && side.st.eng.Name() == "sqlite" {
				problems = append(problems, fmt.Sprintf("%s has a table %s that migrate-store does not know", side.st.Path(), t))
			}
		}
	}
	var plans []tablePlan
	for _, t := range copyTables {
		sc, dc := scat[t], dcat[t]
		switch {
		case sc == nil:
			problems = append(problems, fmt.Sprintf("the source has no table %s", t))
			continue
		case dc == nil:
			problems = append(problems, fmt.Sprintf("the target has no table %s", t))
			continue
		}
		p := tablePlan{name: t}
		for _, d := range dc {
			s, ok := find(sc, d.name)
			if !ok && d.identity && src.eng.Name() == "sqlite" && !hasIdentity(sc) {
				s, ok = rowid, true
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s.%s is in the target but not in the source", t, d.name))
				continue
			}
			if s.class != d.class {
				problems = append(problems, fmt.Sprintf("%s.%s holds %s in the source and %s in the target", t, d.name, s.class, d.class))
			}
			p.cols = append(p.cols, colPair{src: s, dst: d})
		}
		for _, s := range sc {
			if _, ok := find(dc, s.name); ok {
				continue
			}
			if s.identity && dst.eng.Name() == "sqlite" && !hasIdentity(dc) {
				p.cols = append(p.cols, colPair{src: s, dst: rowid})
				continue
			}
			problems = append(problems, fmt.Sprintf("%s.%s is in the source but not in the target", t, s.name))
		}
		plans = append(plans, p)
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, refuse("the schemas of %s and %s differ: %s", src.Path(), dst.Path(), strings.Join(problems, "; "))
	}
	return plans, nil
}

func find(cols []column, name string) (column, bool) {
	for _, c := range cols {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

func hasIdentity(cols []column) bool {
	return slices.ContainsFunc(cols, func(c column) bool { return c.identity })
}

// copier copies tables from a source transaction to a target one.
type copier struct {
	ctx      context.Context
	src      txh
	dst      *sql.Tx
	to       *Store
	batch    int
	progress func(table string, done, total int64)
	repaired int64
}

// maxBound is how many values one INSERT binds, well under either
// engine's limit (SQLite 32,766, PostgreSQL 65,535).
const maxBound = 16000

// table copies one table a batch at a time and counts its rows on both
// sides.
func (c *copier) table(p tablePlan) (TableCopy, error) {
	tc := TableCopy{Table: p.name}
	if err := c.src.QueryRowContext(c.ctx, `SELECT COUNT(*) FROM `+p.name).Scan(&tc.Source); err != nil {
		return tc, fmt.Errorf("store: count %s in the source: %w", p.name, err)
	}
	if p.name == "meta" {
		// The target's own installation id gives way to the source's.
		if _, err := c.dst.ExecContext(c.ctx, `DELETE FROM meta`); err != nil {
			return tc, fmt.Errorf("store: clear meta in the target: %w", err)
		}
	}
	batch := c.batch
	if batch <= 0 {
		batch = min(1000, maxBound/len(p.cols))
	}
	srcCols := make([]string, len(p.cols))
	dstCols := make([]string, len(p.cols))
	for i, cp := range p.cols {
		srcCols[i], dstCols[i] = cp.srcExpr(), cp.dstExpr()
	}
	insert := func(n int) string {
		row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(p.cols)), ",") + ")"
		return c.to.rebind(`INSERT INTO ` + p.name + ` (` + strings.Join(dstCols, ", ") + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+",", n), ","))
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	buf := make([]any, 0, batch*len(p.cols))
	flush := func() error {
		n := len(buf) / len(p.cols)
		if n == 0 {
			return nil
		}
		var err error
		if n == batch {
			if full == nil {
				if full, err = c.dst.PrepareContext(c.ctx, insert(batch)); err != nil {
					return fmt.Errorf("store: copy %s: %w", p.name, err)
				}
			}
			_, err = full.ExecContext(c.ctx, buf...)
		} else {
			_, err = c.dst.ExecContext(c.ctx, insert(n), buf...)
		}
		if err != nil {
			return fmt.Errorf("store: copy %s (rows %d to %d): %w", p.name, tc.Copied+1, tc.Copied+int64(n), err)
		}
		tc.Copied += int64(n)
		buf = buf[:0]
		if c.progress != nil {
			c.progress(p.name, tc.Copied, tc.Source)
		}
		return nil
	}
	rows, err := c.src.QueryContext(c.ctx, `SELECT `+strings.Join(srcCols, ", ")+` FROM `+p.name)
	if err != nil {
		return tc, fmt.Errorf("store: read %s from the source: %w", p.name, err)
	}
	defer rows.Close()
	vals := make([]any, len(p.cols))
	ptrs := make([]any, len(p.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return tc, fmt.Errorf("store: read %s from the source: %w", p.name, err)
		}
		for i, cp := range p.cols {
			buf = append(buf, c.value(vals[i], cp.dst))
		}
		if len(buf) == batch*len(p.cols) {
			if err := flush(); err != nil {
				return tc, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return tc, fmt.Errorf("store: read %s from the source: %w", p.name, err)
	}
	rows.Close()
	if err := flush(); err != nil {
		return tc, err
	}
	if err := c.dst.QueryRowContext(c.ctx, `SELECT COUNT(*) FROM `+p.name).Scan(&tc.Target); err != nil {
		return tc, fmt.Errorf("store: count %s in the target: %w", p.name, err)
	}
	if tc.Source != tc.Copied || tc.Target != tc.Copied {
		return tc, fmt.Errorf("store: %s: %d rows in the source, %d copied, %d in the target: the copy is rolled back", p.name, tc.Source, tc.Copied, tc.Target)
	}
	return tc, nil
}

// value is v as the target's column takes it. SQLite hands an empty blob
// back as nil, and stores any bytes as text; PostgreSQL's text is UTF-8
// without NUL.
func (c *copier) value(v any, col column) any {
	switch col.class {
	case "blob":
		switch x := v.(type) {
		case nil:
			if col.notNull {
				return []byte{}
			}
		case []byte:
			if x == nil {
				return []byte{} // empty, not NULL
			}
		case string:
			return []byte(x)
		}
	case "text":
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		if s, ok := v.(string); ok && c.to.utf8 && (!utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0) {
			c.repaired++
			return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
		}
	}
	return v
}
