package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

const (
	idle   = 12 * time.Hour
	maxAge = 7 * 24 * time.Hour
)

func TestStore_CreateSession_StoredHashed(t *testing.T) {
	ctx := context.Background()
	st, path := open(t, newClock(t0))
	id, sess, err := st.CreateSession(ctx, store.SessionConfig, "ops", "operator", []byte("bound"), idle)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Reveal()) != 43 || !sess.Expires.Equal(t0.Add(idle)) {
		t.Errorf("id of %d characters, session %+v", len(id.Reveal()), sess)
	}
	if fileContains(t, path, []byte(id.Reveal())) {
		t.Error("the database files hold the session id in the clear")
	}
	got, err := st.UseSession(ctx, id.Reveal(), idle, maxAge)
	if err != nil || got.Kind != store.SessionConfig || got.Subject != "ops" || got.Role != "operator" || string(got.Binding) != "bound" {
		t.Fatalf("UseSession = %+v, %v", got, err)
	}
	other := "A"
	if strings.HasSuffix(id.Reveal(), "A") {
		other = "B"
	}
	for _, bad := range []string{"", "x", id.Reveal()[:42] + other, id.Reveal() + "A"} {
		if _, err := st.UseSession(ctx, bad, idle, maxAge); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UseSession(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	if err := st.DeleteSession(ctx, id.Reveal()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UseSession(ctx, id.Reveal(), idle, maxAge); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after DeleteSession: %v", err)
	}
}

// TestStore_UseSession_Expiry walks a session through sliding idle expiry
// and the absolute cap.
func TestStore_UseSession_Expiry(t *testing.T) {
	type step struct {
		advance time.Duration
		alive   bool
		expires time.Time // when alive
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle ends it", []step{{idle, false, time.Time{}}}},
		{"just before idle", []step{{idle - time.Millisecond, true, t0.Add(2*idle - time.Millisecond)}}},
		{"use slides it", []step{
			{11 * time.Hour, true, t0.Add(23 * time.Hour)},
			{11 * time.Hour, true, t0.Add(34 * time.Hour)},
			{11 * time.Hour, true, t0.Add(45 * time.Hour)},
		}},
		{"slides at most once a minute", []step{
			{30 * time.Second, true, t0.Add(idle)},
			{40 * time.Second, true, t0.Add(70*time.Second + idle)},
		}},
		{"never past the cap", func() []step {
			var s []step
			at := time.Duration(0)
			for at+11*time.Hour < maxAge {
				at += 11 * time.Hour
				want := t0.Add(at + idle)
				if lim := t0.Add(maxAge); want.After(lim) {
					want = lim
				}
				s = append(s, step{11 * time.Hour, true, want})
			}
			return append(s, step{maxAge - at, false, time.Time{}})
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(t0)
			st, path := open(t, clk)
			id, _, err := st.CreateSession(ctx, store.SessionConfig, "ops", "viewer", nil, idle)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				clk.Add(s.advance)
				got, err := st.UseSession(ctx, id.Reveal(), idle, maxAge)
				if !s.alive {
					if !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("step %d: UseSession = %+v, %v; want it ended", i, got, err)
					}
					if n := count(t, path, "sessions"); n != 0 {
						t.Errorf("step %d: %d session rows left after expiry", i, n)
					}
					return
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if !got.Expires.Equal(s.expires) {
					t.Errorf("step %d: expires %v, want %v", i, got.Expires, s.expires)
				}
			}
		})
	}
}

// TestStore_UseSession_FollowsSubject proves a session carries its user's
// current role and ends with its token.
func TestStore_UseSession_FollowsSubject(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	addUser(t, st, "alice", "operator", alicePassword)
	if _, err := st.CreateToken(ctx, "bot", "admin"); err != nil {
		t.Fatal(err)
	}
	user, _, _ := st.CreateSession(ctx, store.SessionUser, "alice", "admin", nil, idle) // stale role at sign-in
	tok, _, _ := st.CreateSession(ctx, store.SessionToken, "bot", "admin", nil, idle)
	ghost, _, _ := st.CreateSession(ctx, store.SessionUser, "nobody", "admin", nil, idle)
	if got, err := st.UseSession(ctx, user.Reveal(), idle, maxAge); err != nil || got.Role != "operator" {
		t.Errorf("user session = %+v, %v; want role operator (the user's own)", got, err)
	}
	if _, err := st.UseSession(ctx, ghost.Reveal(), idle, maxAge); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a user who does not exist: %v, want ErrNotFound", err)
	}
	if got, err := st.UseSession(ctx, tok.Reveal(), idle, maxAge); err != nil || got.Role != "admin" {
		t.Errorf("token session = %+v, %v", got, err)
	}
	if err := st.RevokeToken(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UseSession(ctx, tok.Reveal(), idle, maxAge); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a revoked token: %v, want ErrNotFound", err)
	}
	if _, _, err := st.CreateSession(ctx, "root", "x", "admin", nil, idle); err == nil {
		t.Error("CreateSession accepted an unknown kind")
	}
}
