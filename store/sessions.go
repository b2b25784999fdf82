package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// Dashboard sessions. The cookie carries 32 random bytes; the row is keyed
// by their SHA-256, so a copy of the database does not hold a usable
// cookie. Looking the row up by that hash needs no constant-time compare:
// an attacker cannot steer the bytes of a SHA-256, so how long the index
// search takes says nothing about any stored session.

// Session kinds: whose session it is.
const (
	SessionUser   = "user"   // a dashboard user (crier users add)
	SessionToken  = "token"  // a database token (crier tokens create)
	SessionConfig = "config" // a token from server.tokens in the config
)

// sessionIDLen is the length of a session id: 32 bytes in base64url.
const sessionIDLen = 43

// Session is one signed-in browser.
type Session struct {
	Kind    string // SessionUser, SessionToken or SessionConfig
	Subject string // the user's or the token's name
	// Role is the subject's role now: a user's or a database token's
	// current role, or for a config token the role it had at sign-in (the
	// server checks the config).
	Role string
	// Binding is opaque to the store: the server ties a config-token
	// session to the token's value with it.
	Binding []byte
	Created time.Time
	Seen    time.Time
	Expires time.Time
}

func sessionHash(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// CreateSession starts a session for subject that ends after idle without
// use; binding is kept with it (nil for none). It returns the session id,
// the cookie value: the only copy. Expired sessions are cleared out on the
// way.
func (s *Store) CreateSession(ctx context.Context, kind, subject, role string, binding []byte, idle time.Duration) (fields.Secret, Session, error) {
	if kind != SessionUser && kind != SessionToken && kind != SessionConfig {
		return "", Session{}, fmt.Errorf("store: create session: unknown kind %q", kind)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Session{}, fmt.Errorf("store: create session: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	if binding == nil {
		binding = []byte{}
	}
	sess := Session{Kind: kind, Subject: subject, Role: role, Binding: binding, Created: now, Seen: now, Expires: now.Add(idle)}
	err := s.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM sessions WHERE expires_at<=?`, ms(now)); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO sessions(hash,kind,subject,role,binding,created_at,seen_at,expires_at) VALUES(?,?,?,?,?,?,?,?)`,
			sessionHash(id), kind, subject, role, binding, ms(now), ms(now), ms(sess.Expires))
		return err
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("store: create session: %w", err)
	}
	return fields.Secret(id), sess, nil
}

// UseSession returns the live session with this id, or ErrNotFound when
// there is none: unknown, expired, or its user removed or its token
// revoked since. Each use slides the expiry to idle from now, but never
// past maxAge after sign-in; the slide is written at most once a minute.
func (s *Store) UseSession(ctx context.Context, id string, idle, maxAge time.Duration) (Session, error) {
	if len(id) != sessionIDLen {
		return Session{}, fmt.Errorf("store: session: %w", ErrNotFound)
	}
	h := sessionHash(id)
	var sess Session
	var created, seen, expires int64
	var current sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT s.kind, s.subject, s.role, s.binding, s.created_at, s.seen_at, s.expires_at,
			CASE s.kind WHEN 'user' THEN u.role
			            WHEN 'token' THEN CASE WHEN t.revoked_at = 0 THEN t.role END
			            ELSE s.role END
		FROM sessions s
		LEFT JOIN users u ON s.kind = 'user' AND u.name = s.subject
		LEFT JOIN api_tokens t ON s.kind = 'token' AND t.name = s.subject
		WHERE s.hash = ?`, h).Scan(&sess.Kind, &sess.Subject, &sess.Role, &sess.Binding, &created, &seen, &expires, &current)
	if errNoRows(err) {
		return Session{}, fmt.Errorf("store: session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: read session: %w", err)
	}
	now := s.now()
	sess.Created, sess.Seen, sess.Expires = fromMS(created), fromMS(seen), fromMS(expires)
	if !current.Valid || !now.Before(sess.Expires) {
		if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash=?`, h); err != nil {
			return Session{}, fmt.Errorf("store: end session: %w", err)
		}
		return Session{}, fmt.Errorf("store: session: %w", ErrNotFound)
	}
	sess.Role = current.String
	if now.Sub(sess.Seen) >= time.Minute {
		exp := now.Add(idle)
		if limit := sess.Created.Add(maxAge); exp.After(limit) {
			exp = limit
		}
		if _, err := s.w.ExecContext(ctx, `UPDATE sessions SET seen_at=?, expires_at=? WHERE hash=?`, ms(now), ms(exp), h); err != nil {
			return Session{}, fmt.Errorf("store: record session use: %w", err)
		}
		sess.Seen, sess.Expires = now, exp
	}
	return sess, nil
}

// DeleteSession ends the session with this id (signing out); an unknown
// id is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash=?`, sessionHash(id)); err != nil {
		return fmt.Errorf("store: end session: %w", err)
	}
	return nil
}
