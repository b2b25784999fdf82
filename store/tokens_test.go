package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// fileContains reports whether any file of the database (main, WAL, shm)
// holds b: secrets must never reach the disk in the clear.
func fileContains(tb testing.TB, path string, b []byte) bool {
	tb.Helper()
	matches, _ := filepath.Glob(path + "*")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

func TestStore_CreateToken_ShownOnceStoredHashed(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, path := open(t, clk)
	tok, err := st.CreateToken(ctx, "ci-bot", "operator")
	if err != nil {
		t.Fatal(err)
	}
	v := tok.Reveal()
	if !strings.HasPrefix(v, store.TokenPrefix) || len(v) != 66 || !store.LooksLikeToken(v) {
		t.Fatalf("token %d characters, prefix %q: want crier_ and 66 characters", len(v), v[:6])
	}
	other, err := st.CreateToken(ctx, "other", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if other.Reveal() == v || other.Reveal()[6:22] == v[6:22] {
		t.Error("two tokens share a selector or a value")
	}
	verifier := v[len(v)-43:]
	if fileContains(t, path, []byte(v)) || fileContains(t, path, []byte(verifier)) {
		t.Error("the database files hold the token (or its secret part) in the clear")
	}
	got, err := st.UseToken(ctx, v)
	if err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	if got.Name != "ci-bot" || got.Role != "operator" || !got.Created.Equal(t0) || !got.LastUsed.Equal(t0) {
		t.Errorf("UseToken = %+v", got)
	}
}

func lastUsed(tb testing.TB, path, name string) int64 {
	tb.Helper()
	var v int64
	if err := rawRow(tb, path, `SELECT last_used_at FROM api_tokens WHERE name=?`, name).Scan(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestStore_UseToken_LastUsedOncePerMinute proves a busy client costs at
// most one write a minute.
func TestStore_UseToken_LastUsedOncePerMinute(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, path := open(t, clk)
	tok, _ := st.CreateToken(ctx, "bot", "viewer")
	steps := []struct {
		advance time.Duration
		want    time.Time
	}{
		{0, t0},
		{30 * time.Second, t0},
		{29 * time.Second, t0},
		{time.Second, t0.Add(time.Minute)},
		{10 * time.Second, t0.Add(time.Minute)},
		{2 * time.Hour, t0.Add(time.Minute + 10*time.Second + 2*time.Hour)},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		if _, err := st.UseToken(ctx, tok.Reveal()); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(t, path, "bot"); got != s.want.UnixMilli() {
			t.Errorf("step %d: last_used_at = %v, want %v", i, time.UnixMilli(got).UTC(), s.want)
		}
	}
}

func TestStore_UseToken_Rejects(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	tok, _ := st.CreateToken(ctx, "bot", "admin")
	revoked, _ := st.CreateToken(ctx, "old", "admin")
	if err := st.RevokeToken(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	v := tok.Reveal()
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name, token string
		want        error
	}{
		{"empty", "", store.ErrNotFound},
		{"not a crier token", "some-config-token-0123456789", store.ErrNotFound},
		{"secret part changed", flip(v, len(v)-1), store.ErrNotFound},
		{"selector changed", flip(v, 7), store.ErrNotFound},
		{"truncated", v[:len(v)-1], store.ErrNotFound},
		{"extended", v + "x", store.ErrNotFound},
		{"revoked", revoked.Reveal(), store.ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.UseToken(ctx, tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UseToken = %v, want %v", err, tt.want)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("the error repeats the token: %v", err)
			}
		})
	}
}

func TestStore_CreateToken_BadInput(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	if _, err := st.CreateToken(ctx, "taken", "viewer"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, "gone", "viewer"); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tokName, role, wantIn string
		wantErr                     error
	}{
		{"empty name", "", "viewer", `name ""`, nil},
		{"space in name", "ci bot", "viewer", `name "ci bot"`, nil},
		{"unknown role", "bot", "root", `role "root": must be viewer, operator or admin`, nil},
		{"taken", "taken", "viewer", `"taken"`, store.ErrExists},
		{"revoked name", "gone", "admin", `"gone"`, store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.CreateToken(ctx, tt.tokName, tt.role)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("CreateToken = %v, want an error with %s", err, tt.wantIn)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("CreateToken = %v, want %v", err, tt.wantErr)
			}
		})
	}
	list, _ := st.Tokens(ctx)
	if len(list) != 2 {
		t.Errorf("%d tokens after refused creates, want 2", len(list))
	}
}

func TestStore_Tokens_ListsRevokedAndNeverTheToken(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, _ := open(t, clk)
	a, _ := st.CreateToken(ctx, "a", "viewer")
	clk.Add(time.Hour)
	if _, err := st.CreateToken(ctx, "b", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UseToken(ctx, a.Reveal()); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if err := st.RevokeToken(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, "b"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := st.RevokeToken(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken(nobody) = %v, want ErrNotFound", err)
	}
	list, err := st.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.APIToken{
		{Name: "a", Role: "viewer", Created: t0, LastUsed: t0.Add(time.Hour)},
		{Name: "b", Role: "admin", Created: t0.Add(time.Hour), Revoked: t0.Add(2 * time.Hour)},
	}
	if len(list) != len(want) {
		t.Fatalf("Tokens = %+v", list)
	}
	for i := range want {
		g, w := list[i], want[i]
		if g.Name != w.Name || g.Role != w.Role || !g.Created.Equal(w.Created) || !g.LastUsed.Equal(w.LastUsed) || !g.Revoked.Equal(w.Revoked) {
			t.Errorf("Tokens[%d] = %+v, want %+v", i, g, w)
		}
	}
}
