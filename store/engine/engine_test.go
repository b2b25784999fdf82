package engine

import "testing"

func TestNumbered(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b=? AND c IN (?,?)`, `SELECT a FROM t WHERE b=$1 AND c IN ($2,$3)`},
		{`SELECT '?' , "a?b", ? -- what?
		FROM t WHERE x=?`, `SELECT '?' , "a?b", $1 -- what?
		FROM t WHERE x=$2`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
	} {
		if got := Numbered(c.in); got != c.want {
			t.Errorf("Numbered(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
