package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// API tokens in the database. A token reads
//
//	crier_<selector>_<verifier>
//
// with a 16-hex-digit selector (8 random bytes) and a 43-character
// base64url verifier (32 random bytes). The prefix makes a leaked token
// recognisable to secret scanners and people; the selector finds the row
// without comparing secrets in SQL; the row keeps only a SHA-256 of the
// whole token, compared in constant time.
//
// SHA-256 (not bcrypt or argon2) is the right hash here: those slow
// hashes exist to make guessing low-entropy passwords expensive, but a
// 256-bit random token cannot be guessed however fast the hash is, and a
// fast hash keeps every API request cheap.

// TokenPrefix starts every database API token.
const TokenPrefix = "crier_"

const (
	selectorLen = 16 // hex digits
	verifierLen = 43 // base64url characters of 32 bytes
	tokenLen    = len(TokenPrefix) + selectorLen + 1 + verifierLen
)

// ErrExists is returned when a name is already taken.
var ErrExists = errors.New("already exists")

// ErrRevoked is returned when a token was revoked.
var ErrRevoked = errors.New("revoked")

// APIToken describes one database token; the token itself is never kept.
type APIToken struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"` // zero: never used
	Revoked  time.Time `json:"revoked"`   // zero: not revoked
}

// ValidRole reports whether role is one crier knows: viewer (read),
// operator (incidents and broadcasts) or admin (everything).
func ValidRole(role string) bool {
	return role == "viewer" || role == "operator" || role == "admin"
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// NameRule says what ValidName accepts, for error messages.
const NameRule = "use 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"

// ValidName reports whether name can name a token or a user: short, and
// safe to print in logs and tables.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// checkNameRole validates the name and role of a new token or user.
func checkNameRole(name, role string) error {
	if !ValidName(name) {
		return fmt.Errorf("name %q: %s", name, NameRule)
	}
	if !ValidRole(role) {
		return fmt.Errorf("role %q: must be viewer, operator or admin", role)
	}
	return nil
}

// CreateToken makes a new random token named name with role and stores
// its selector and hash. The returned secret is the only copy of the
// token: show it once.
func (s *Store) CreateToken(ctx context.Context, name, role string) (fields.Secret, error) {
	if err := checkNameRole(name, role); err != nil {
		return "", fmt.Errorf("store: create token: %w", err)
	}
	var sel [8]byte
	var ver [32]byte
	if _, err := rand.Read(sel[:]); err != nil {
		return "", fmt.Errorf("store: create token: %w", err)
	}
	if _, err := rand.Read(ver[:]); err != nil {
		return "", fmt.Errorf("store: create token: %w", err)
	}
	selector := hex.EncodeToString(sel[:])
	token := TokenPrefix + selector + "_" + base64.RawURLEncoding.EncodeToString(ver[:])
	sum := sha256.Sum256([]byte(token))
	err := s.Write(ctx, func(t *Tx) error {
		var n int
		if err := t.queryRow(`SELECT COUNT(*) FROM api_tokens WHERE name=?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("store: a token named %q: %w (revoked tokens keep their names; choose another)", name, ErrExists)
		}
		_, err := t.exec(`INSERT INTO api_tokens(name,role,selector,hash,created_at) VALUES(?,?,?,?,?)`, name, role, selector, sum[:], ms(s.now()))
		return err
	})
	if err != nil {
		return "", err
	}
	return fields.Secret(token), nil
}

// parseToken splits a presented token into its selector, or reports that
// it is not shaped like a database token.
func parseToken(token string) (selector string, ok bool) {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return "", false
	}
	rest := token[len(TokenPrefix):]
	if rest[selectorLen] != '_' {
		return "", false
	}
	return rest[:selectorLen], true
}

// LooksLikeToken reports whether s has the shape of a database token
// (prefix and lengths), so callers can skip the database for anything else.
func LooksLikeToken(s string) bool {
	_, ok := parseToken(s)
	return ok
}

// UseToken checks a presented token: ErrNotFound when no token matches,
// ErrRevoked when it matched a revoked one. A valid use is recorded as
// last_used, at most once a minute per token so that a busy API client
// does not turn every read into a database write.
func (s *Store) UseToken(ctx context.Context, token string) (APIToken, error) {
	var t APIToken
	selector, ok := parseToken(token)
	if !ok {
		return t, fmt.Errorf("store: token: %w", ErrNotFound)
	}
	var hash []byte
	var created, used, revoked int64
	err := s.r.QueryRowContext(ctx, `SELECT name, role, hash, created_at, last_used_at, revoked_at FROM api_tokens WHERE selector=?`, selector).
		Scan(&t.Name, &t.Role, &hash, &created, &used, &revoked)
	if errNoRows(err) {
		return APIToken{}, fmt.Errorf("store: token: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("store: read token: %w", err)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return APIToken{}, fmt.Errorf("store: token: %w", ErrNotFound)
	}
	t.Created, t.LastUsed, t.Revoked = fromMS(created), fromMS(used), fromMS(revoked)
	if revoked != 0 {
		return t, fmt.Errorf("store: token %s: %w", t.Name, ErrRevoked)
	}
	now := s.now()
	if now.Sub(t.LastUsed) >= time.Minute {
		if _, err := s.w.ExecContext(ctx, `UPDATE api_tokens SET last_used_at=? WHERE name=? AND last_used_at<=?`,
			ms(now), t.Name, ms(now.Add(-time.Minute))); err != nil {
			return APIToken{}, fmt.Errorf("store: record token use: %w", err)
		}
		t.LastUsed = now
	}
	return t, nil
}

// Tokens lists every database token, revoked ones too, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at, name`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var t APIToken
		var created, used, revoked int64
		if err := rows.Scan(&t.Name, &t.Role, &created, &used, &revoked); err != nil {
			return nil, fmt.Errorf("store: list tokens: %w", err)
		}
		t.Created, t.LastUsed, t.Revoked = fromMS(created), fromMS(used), fromMS(revoked)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the named token and ends the dashboard sessions
// signed in with it. Revoking a revoked token changes nothing.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	return s.Write(ctx, func(t *Tx) error {
		var revoked int64
		if err := t.queryRow(`SELECT revoked_at FROM api_tokens WHERE name=?`, name).Scan(&revoked); err != nil {
			if errNoRows(err) {
				return fmt.Errorf("store: token %q: %w", name, ErrNotFound)
			}
			return fmt.Errorf("store: revoke token: %w", err)
		}
		if revoked == 0 {
			if _, err := t.exec(`UPDATE api_tokens SET revoked_at=? WHERE name=?`, ms(s.now()), name); err != nil {
				return fmt.Errorf("store: revoke token: %w", err)
			}
		}
		if _, err := t.exec(`DELETE FROM sessions WHERE kind=? AND subject=?`, SessionToken, name); err != nil {
			return fmt.Errorf("store: end the token's sessions: %w", err)
		}
		return nil
	})
}
