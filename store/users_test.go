package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

const alicePassword = "correct horse battery staple"

// addUser stores a user with a cheap bcrypt cost (the production cost is
// exercised by TestStore_HashPassword_Cost).
func addUser(tb testing.TB, st *store.Store, name, role, password string) {
	tb.Helper()
	h, err := store.HashPassword(fields.Secret(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.AddUser(context.Background(), name, role, h); err != nil {
		tb.Fatal(err)
	}
}

func TestStore_CheckPassword(t *testing.T) {
	ctx := context.Background()
	st, path := open(t, newClock(t0))
	addUser(t, st, "alice", "operator", alicePassword)
	if fileContains(t, path, []byte(alicePassword)) {
		t.Fatal("the database files hold the password in the clear")
	}
	tests := []struct {
		name, user, password string
		ok                   bool
	}{
		{"right", "alice", alicePassword, true},
		{"wrong password", "alice", alicePassword + "!", false},
		{"case matters", "alice", strings.ToUpper(alicePassword), false},
		{"unknown user", "mallory", alicePassword, false},
		{"empty password", "alice", "", false},
		{"over 72 bytes, right prefix", "alice", alicePassword + strings.Repeat("x", 80), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := st.CheckPassword(ctx, tt.user, fields.Secret(tt.password))
			if tt.ok {
				if err != nil || u.Name != "alice" || u.Role != "operator" || !u.Created.Equal(t0) {
					t.Fatalf("CheckPassword = %+v, %v", u, err)
				}
				return
			}
			if !errors.Is(err, store.ErrBadPassword) {
				t.Fatalf("CheckPassword = %+v, %v; want ErrBadPassword", u, err)
			}
			if u != (store.User{}) {
				t.Errorf("a failed check returned the user %+v", u)
			}
		})
	}
}

func TestStore_HashPassword_Rules(t *testing.T) {
	tests := []struct {
		name, password, wantIn string
	}{
		{"short", "hunter2", "has 7 characters: use at least 12"},
		{"too long", strings.Repeat("é", 40), "is 80 bytes long: bcrypt takes at most 72"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.HashPassword(fields.Secret(tt.password), bcrypt.MinCost)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("HashPassword = %v, want %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), tt.password) {
				t.Errorf("the error repeats the password")
			}
		})
	}
}

func TestStore_HashPassword_Cost(t *testing.T) {
	h, err := store.HashPassword(alicePassword, store.DefaultPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(h); c != store.DefaultPasswordCost {
		t.Errorf("cost %d, want %d", c, store.DefaultPasswordCost)
	}
}

func TestStore_AddUser_BadInput(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	addUser(t, st, "alice", "viewer", alicePassword)
	good, _ := store.HashPassword(alicePassword, bcrypt.MinCost)
	tests := []struct {
		name, user, role string
		hash             []byte
		wantIn           string
	}{
		{"taken", "alice", "admin", good, "already exists"},
		{"bad role", "bob", "superuser", good, `role "superuser"`},
		{"bad name", "bob smith", "viewer", good, `name "bob smith"`},
		{"not a bcrypt hash", "bob", "viewer", []byte("plaintext-password"), "not a bcrypt hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := st.AddUser(ctx, tt.user, tt.role, tt.hash)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("AddUser = %v, want %q", err, tt.wantIn)
			}
		})
	}
	if list, _ := st.Users(ctx); len(list) != 1 || list[0].Role != "viewer" {
		t.Errorf("Users = %+v, want alice (viewer) alone", list)
	}
}

func TestStore_RemoveUser_EndsSessions(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	addUser(t, st, "alice", "admin", alicePassword)
	addUser(t, st, "bob", "viewer", alicePassword)
	aliceID, _, _ := st.CreateSession(ctx, store.SessionUser, "alice", "admin", nil, idle)
	bobID, _, _ := st.CreateSession(ctx, store.SessionUser, "bob", "viewer", nil, idle)
	if err := st.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UseSession(ctx, aliceID.Reveal(), idle, maxAge); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a removed user's session: %v, want ErrNotFound", err)
	}
	if _, err := st.UseSession(ctx, bobID.Reveal(), idle, maxAge); err != nil {
		t.Errorf("another user's session: %v", err)
	}
	if _, err := st.CheckPassword(ctx, "alice", alicePassword); !errors.Is(err, store.ErrBadPassword) {
		t.Errorf("a removed user signs in: %v", err)
	}
	if err := st.RemoveUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing twice: %v, want ErrNotFound", err)
	}
	list, _ := st.Users(ctx)
	if len(list) != 1 || list[0].Name != "bob" {
		t.Errorf("Users = %+v", list)
	}
}
