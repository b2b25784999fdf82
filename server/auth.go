package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// Who may do what. A request signs in with a bearer token (from
// server.tokens in the config, or made with `crier tokens create`) or with
// the dashboard's session cookie. Roles are ranked: viewer reads, operator
// also runs incidents and broadcasts, admin also manages subscribers,
// tokens and config. A session's state-changing requests also carry its
// CSRF token; bearer requests need none (a browser never adds a bearer
// header on its own, so a forged cross-site request cannot carry one).

// The names browsers and the dashboard use.
const (
	SessionCookie = "crier_session" // the session cookie
	CSRFField     = "csrf"          // the form field carrying the CSRF token
	CSRFHeader    = "X-CSRF-Token"  // the header carrying it (scripts)
	SigninPath    = "/signin"       // GET: the page; POST: token, or username and password, and next
	SignoutPath   = "/signout"      // POST, with the CSRF token
)

var roleRank = map[string]int{"viewer": 1, "operator": 2, "admin": 3}

// AuthStore is what database tokens, users and sessions need of the store.
type AuthStore interface {
	UseToken(ctx context.Context, token string) (store.APIToken, error)
	CheckPassword(ctx context.Context, name string, password fields.Secret) (store.User, error)
	CreateSession(ctx context.Context, kind, subject, role string, binding []byte, idle time.Duration) (fields.Secret, store.Session, error)
	UseSession(ctx context.Context, id string, idle, maxAge time.Duration) (store.Session, error)
	DeleteSession(ctx context.Context, id string) error
	BeginSignin(ctx context.Context, window time.Duration, limits ...store.SigninLimit) (store.SigninAttempt, time.Duration, error)
	ForgetSignin(ctx context.Context, a store.SigninAttempt) error
}

// AuthOptions turn on database tokens and dashboard sign-in (users and
// sessions). Without them only the config's tokens are accepted.
type AuthOptions struct {
	Store AuthStore
	// PublicURL is server.public_url: when it is https the session cookie
	// is Secure even if TLS ends at a proxy in front of crier.
	PublicURL string
	// SessionIdle ends a session this long after its last use (default 12h).
	SessionIdle time.Duration
	// SessionMax ends a session this long after sign-in however busy it
	// is (default 7 days).
	SessionMax time.Duration
	// SigninWindow, SigninPerAddress and SigninPerUser limit failed
	// sign-ins: at most SigninPerAddress from one remote address (IPv6:
	// its /64) and at most SigninPerUser for one user name, from any
	// address, in any SigninWindow (defaults 1 minute, 5 and 10). They
	// are counted in the database, so they hold for every crier server
	// on it together.
	SigninWindow     time.Duration
	SigninPerAddress int
	SigninPerUser    int
	// SessionSecret is a secret every crier server on the database has in
	// its config and the database does not (server.session_secret, or
	// webhooks.ack_secret): the key that ties a config-token session to
	// the token's value is derived from it, so such a session works on
	// every server and outlives a restart. Unset, the key is random per
	// process: a config-token session then works only on the server that
	// signed it in, until that server stops.
	SessionSecret fields.Secret
	// SigninPage, if set, renders the sign-in page (the dashboard's look);
	// nil renders a plain built-in one. It must answer with p.Status.
	SigninPage func(w http.ResponseWriter, r *http.Request, p SigninPage)

	// configKey binds config-token sessions to the token's value (see
	// configBinding): derived from SessionSecret, or random.
	configKey []byte
}

// Principal is who a request signed in as.
type Principal struct {
	Name string // the token's or the user's name
	Role string // viewer, operator or admin
	// CSRF is the session's CSRF token: put it in every form (field
	// CSRFField) or script request (header CSRFHeader). Empty for bearer
	// requests, which need none.
	CSRF    string
	Session bool // signed in with the session cookie, not a bearer token
}

type principalKey struct{}

// errBadToken means a bearer token was presented and is not valid
// (unknown, mistyped or revoked: the answer does not say which).
var errBadToken = errors.New("the bearer token is not valid")

// Principal reports who the request signed in as. Behind s.route with a
// role it is the principal the route admitted; on public routes it looks
// at the request's credentials itself.
func (s *Server) Principal(r *http.Request) (Principal, bool) {
	if p, ok := r.Context().Value(principalKey{}).(Principal); ok {
		return p, true
	}
	p, ok, err := s.identify(r)
	if err != nil {
		return Principal{}, false
	}
	return p, ok
}

// identify finds the request's principal: a bearer token if there is an
// Authorization header (a bad one is errBadToken, never a fallback to the
// cookie), else a live session. ok is false when neither is presented.
func (s *Server) identify(r *http.Request) (p Principal, ok bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, found := strings.CutPrefix(h, "Bearer ")
		if !found || tok == "" {
			return Principal{}, false, errBadToken
		}
		name, role, err := s.checkToken(r.Context(), tok)
		if err != nil {
			return Principal{}, false, err
		}
		return Principal{Name: name, Role: role}, true, nil
	}
	a := s.o.Auth
	if a == nil {
		return Principal{}, false, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Principal{}, false, nil
	}
	sess, err := a.Store.UseSession(r.Context(), c.Value, a.SessionIdle, a.SessionMax)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, false, err
	}
	if sess.Kind == store.SessionConfig {
		// A config token's session lives only as long as that token, with
		// that value, stays in the config, and has the role the config
		// gives it now.
		t := s.configToken(sess.Subject)
		if t == nil || !hmac.Equal(sess.Binding, s.configBinding(t)) {
			return Principal{}, false, nil
		}
		sess.Role = t.Role
	}
	return Principal{Name: sess.Subject, Role: sess.Role, CSRF: csrfToken(c.Value), Session: true}, true, nil
}

// checkToken finds the token's name and role: config tokens first, every
// one compared in constant time (no early exit that would time which one
// nearly matched), then database tokens.
func (s *Server) checkToken(ctx context.Context, tok string) (name, role string, err error) {
	if t := s.matchConfigToken(tok); t != nil {
		return t.Name, t.Role, nil
	}
	if s.o.Auth == nil || !store.LooksLikeToken(tok) {
		return "", "", errBadToken
	}
	t, err := s.o.Auth.Store.UseToken(ctx, tok)
	if errors.Is(err, store.ErrRevoked) {
		s.o.Log.Info("revoked token presented", "name", t.Name)
		return "", "", errBadToken
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", "", errBadToken
	}
	if err != nil {
		return "", "", err
	}
	return t.Name, t.Role, nil
}

// matchConfigToken is the config token tok is, or nil.
func (s *Server) matchConfigToken(tok string) *Token {
	gotSum := sha256.Sum256([]byte(tok))
	var match *Token
	for i := range s.o.Tokens {
		want := sha256.Sum256([]byte(s.o.Tokens[i].Value.Reveal()))
		if subtle.ConstantTimeCompare(gotSum[:], want[:]) == 1 {
			match = &s.o.Tokens[i]
		}
	}
	return match
}

func (s *Server) configToken(name string) *Token {
	for i := range s.o.Tokens {
		if s.o.Tokens[i].Name == name {
			return &s.o.Tokens[i]
		}
	}
	return nil
}

// configBinding ties a session signed in with config token t to t's
// value: rotating the token in the config ends its sessions, as revoking
// ends a database token's. The key comes from a secret in every server's
// config (AuthOptions.SessionSecret), never from the database, so the
// stored binding is no offline test for guesses of the token (config
// tokens may be weaker than database ones) to someone with a copy of the
// database alone. A key kept in the database would let every server
// check the binding without configuring anything, but would give that
// test away with every backup; a random key per process (without the
// secret) keeps the test away but makes such sessions work only on the
// server that signed them in, until it stops.
func (s *Server) configBinding(t *Token) []byte {
	m := hmac.New(sha256.New, s.o.Auth.configKey)
	m.Write([]byte(t.Name))
	m.Write([]byte{0})
	m.Write([]byte(t.Value.Reveal()))
	return m.Sum(nil)
}

// csrfToken derives a session's CSRF token from its id, so nothing more
// is stored, and a copy of the database (which holds only a hash of the
// id) cannot forge it.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("crier csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// auth admits requests signed in with at least role. Unsigned browser
// page loads go to the sign-in page; everything else gets a JSON 401/403
// that names no token, user or hash.
func (s *Server) auth(role string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := s.identify(r)
		switch {
		case errors.Is(err, errBadToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="crier", error="invalid_token"`)
			s.deny(w, r, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
			return
		case err != nil:
			s.o.Log.Error("sign-in check failed", "err", err)
			s.deny(w, r, http.StatusInternalServerError, "internal", "internal error; see the server log")
			return
		case !ok:
			if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
				http.SetCookie(w, s.sessionCookie(r, "", -1)) // expired or ended: stop sending it
			}
			if s.o.Auth != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && wantsHTML(r) {
				http.Redirect(w, r, SigninPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="crier"`)
			s.deny(w, r, http.StatusUnauthorized, "unauthorized", "sign in: send Authorization: Bearer <token> (server.tokens, or crier tokens create), or sign in at "+SigninPath)
			return
		}
		if roleRank[p.Role] < roleRank[role] {
			s.deny(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("this needs the %s role", role))
			return
		}
		if p.Session && !safeMethod(r.Method) {
			if status, msg := s.checkCSRF(w, r, p); status != 0 {
				s.deny(w, r, status, "csrf", msg)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func wantsHTML(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "text/html") }

// checkCSRF wants the session's CSRF token in the X-CSRF-Token header or
// the csrf form field; it returns a status and message when it is missing
// or wrong. A form is parsed here (size-limited), so handlers read it from
// r.PostForm.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, p Principal) (int, string) {
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		ct := r.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data") {
			r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBody)
			var err error
			if strings.HasPrefix(ct, "multipart/") {
				err = r.ParseMultipartForm(s.o.MaxBody)
			} else {
				err = r.ParseForm()
			}
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.o.MaxBody)
			}
			got = r.PostForm.Get(CSRFField)
		}
	}
	if got == "" {
		return http.StatusForbidden, "a signed-in browser's " + r.Method + " needs the CSRF token (form field csrf or header X-CSRF-Token)"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) != 1 {
		return http.StatusForbidden, "the CSRF token does not belong to this session: reload the page and try again"
	}
	return 0, ""
}

var denyPage = template.Must(template.New("deny").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Status}} · crier</title></head>
<body><main><h1>{{.Title}}</h1><p>{{.Msg}}</p><p><a href="/">Back to the dashboard</a> · <a href="` + SigninPath + `">Sign in</a></p></main></body></html>
`))

// deny answers a refused request: JSON for API clients, a short page for
// browsers.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if !wantsHTML(r) {
		writeError(w, status, code, "", msg)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = denyPage.Execute(w, map[string]any{"Status": status, "Title": http.StatusText(status), "Msg": msg})
}

// sessionCookie is the session cookie with value, or with maxAge -1 the
// instruction to delete it. It is HttpOnly (scripts never see it),
// SameSite=Lax (other sites' forms do not carry it; links from an email
// into the dashboard still do) and Secure whenever crier is reached over
// TLS.
func (s *Server) sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	secure := r.TLS != nil
	if a := s.o.Auth; a != nil && strings.HasPrefix(strings.ToLower(a.PublicURL), "https://") {
		secure = true
	}
	return &http.Cookie{Name: SessionCookie, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
}

// authDefaults fills in AuthOptions' defaults; nil without a store.
func authDefaults(a *AuthOptions) *AuthOptions {
	if a == nil || a.Store == nil {
		return nil
	}
	c := *a
	if c.SessionIdle <= 0 {
		c.SessionIdle = 12 * time.Hour
	}
	if c.SessionMax <= 0 {
		c.SessionMax = 7 * 24 * time.Hour
	}
	if c.SigninWindow <= 0 {
		c.SigninWindow = time.Minute
	}
	if c.SigninPerAddress <= 0 {
		c.SigninPerAddress = 5
	}
	if c.SigninPerUser <= 0 {
		c.SigninPerUser = 10
	}
	if c.SessionSecret.IsSet() {
		m := hmac.New(sha256.New, []byte(c.SessionSecret.Reveal()))
		m.Write([]byte("crier config-token session binding v1"))
		c.configKey = m.Sum(nil)
	} else {
		c.configKey = make([]byte, 32)
		_, _ = rand.Read(c.configKey) // crypto/rand.Read never fails (it crashes the program instead)
	}
	return &c
}
