package store

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/crier-dev/crier/internal/fields"
)

// Dashboard users: a name, a role and a bcrypt hash of the password.
// bcrypt (not SHA-256 as for tokens) because people choose passwords, and
// a stolen database must make guessing them slow.

// DefaultPasswordCost is the bcrypt cost of new passwords: about a quarter
// of a second per hash on a server core, slow enough for guessing and
// fast enough for a sign-in.
const DefaultPasswordCost = 12

// Password length limits: a floor against trivially guessable passwords,
// and bcrypt's own ceiling (it ignores nothing silently: longer is refused).
const (
	MinPasswordLen = 12 // characters
	MaxPasswordLen = 72 // bytes
)

// ErrBadPassword is returned when a name and password do not match a user.
// It does not say which of the two was wrong.
var ErrBadPassword = errors.New("wrong username or password")

// dummyHash is checked against when the user does not exist, so a sign-in
// with an unknown name takes as long as one with a wrong password and does
// not tell an attacker which names exist. It is a cost-12 hash of a
// password nobody types.
const dummyHash = "$2a$12$VHos1XDOFVSfZ4MudQUTu.NpeakIMnjF39.ydR0OIQc4pS/V9T0xG"

// User describes one dashboard user; the password hash is never returned.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

// HashPassword checks a new password's length and hashes it with bcrypt
// at cost (DefaultPasswordCost in production; tests may use
// bcrypt.MinCost).
func HashPassword(password fields.Secret, cost int) ([]byte, error) {
	p := password.Reveal()
	if n := utf8.RuneCountInString(p); n < MinPasswordLen {
		return nil, fmt.Errorf("the password has %d characters: use at least %d (a passphrase of a few words is easiest)", n, MinPasswordLen)
	}
	if len(p) > MaxPasswordLen {
		return nil, fmt.Errorf("the password is %d bytes long: bcrypt takes at most %d", len(p), MaxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(p), cost)
	if err != nil {
		return nil, fmt.Errorf("hash the password: %w", err)
	}
	return h, nil
}

// AddUser stores a new user with a password hash from HashPassword.
func (s *Store) AddUser(ctx context.Context, name, role string, passwordHash []byte) error {
	if err := checkNameRole(name, role); err != nil {
		return fmt.Errorf("store: add user: %w", err)
	}
	if _, err := bcrypt.Cost(passwordHash); err != nil {
		return fmt.Errorf("store: add user %s: the password hash is not a bcrypt hash: %w", name, err)
	}
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`INSERT INTO users(name,role,password_hash,created_at) VALUES(?,?,?,?) ON CONFLICT DO NOTHING`,
			name, role, string(passwordHash), ms(s.now()))
		if err != nil {
			return fmt.Errorf("store: add user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: a user named %q: %w (remove it first to replace it)", name, ErrExists)
		}
		return nil
	})
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var created int64
		if err := rows.Scan(&u.Name, &u.Role, &created); err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		u.Created = fromMS(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

// RemoveUser deletes the named user and ends their sessions.
func (s *Store) RemoveUser(ctx context.Context, name string) error {
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`DELETE FROM users WHERE name=?`, name)
		if err != nil {
			return fmt.Errorf("store: remove user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: user %q: %w", name, ErrNotFound)
		}
		if _, err := t.exec(`DELETE FROM sessions WHERE kind=? AND subject=?`, SessionUser, name); err != nil {
			return fmt.Errorf("store: end the user's sessions: %w", err)
		}
		return nil
	})
}

// CheckPassword returns the user when name and password match, and
// ErrBadPassword (never which part was wrong) when they do not. It runs
// bcrypt either way, so an unknown name costs the same time as a wrong
// password.
func (s *Store) CheckPassword(ctx context.Context, name string, password fields.Secret) (User, error) {
	var u User
	var hash string
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT name, role, password_hash, created_at FROM users WHERE name=?`, name).Scan(&u.Name, &u.Role, &hash, &created)
	found := err == nil
	if err != nil && !errNoRows(err) {
		return User{}, fmt.Errorf("store: read user: %w", err)
	}
	if !found {
		hash = dummyHash
	}
	p := password.Reveal()
	if len(p) > MaxPasswordLen {
		p = p[:MaxPasswordLen] // never matches a stored hash (those were refused), but still costs a bcrypt
		found = false
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(p)) != nil || !found {
		return User{}, ErrBadPassword
	}
	u.Created = fromMS(created)
	return u, nil
}
