package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestReachedQuery_UsesIndex: the follow-up query of a plan reads the
// deliveries_rule index, not every delivery ever written.
func TestReachedQuery_UsesIndex(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.r.db.Query(`EXPLAIN QUERY PLAN `+reachedQuery, "INC-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	t.Log(strings.Join(plan, "; "))
	if p := strings.Join(plan, "; "); !strings.Contains(p, "deliveries_rule") {
		t.Errorf("query plan %q does not use the deliveries_rule index", p)
	}
}
