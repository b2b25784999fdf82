package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// authClock is a clock the auth tests move by hand.
type authClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *authClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *authClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	authConfigToken = "config-operator-token-0123456789"
	authPassword    = "correct horse battery staple"
)

// authEnv is a server with database tokens, users and sessions on a real
// SQLite store, and one extra route that reports the principal.
type authEnv struct {
	t     *testing.T
	s     *Server
	srv   *httptest.Server
	st    *store.Store
	clock *authClock
}

func newAuthEnv(t *testing.T, tlsServer bool, mods ...func(*Options)) *authEnv {
	t.Helper()
	clk := &authClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"), store.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := Options{Incidents: storeIncidents{st}, Store: st, MaxBody: 4096,
		Tokens: []Token{{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken)}},
		Auth:   &AuthOptions{Store: st, SigninPerAddress: 3, SigninPerUser: 5, SigninWindow: time.Minute}}
	for _, m := range mods {
		m(&o)
	}
	e := &authEnv{t: t, st: st, clock: clk}
	e.s = New(o)
	who := func(w http.ResponseWriter, r *http.Request) {
		p, ok := e.s.Principal(r)
		if r.Method == http.MethodPost {
			p.Name += " form=" + r.PostForm.Get("x")
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": ok, "name": p.Name, "role": p.Role, "session": p.Session, "csrf": p.CSRF != ""})
	}
	e.s.route("GET", "/test/whoami", "viewer", who)
	e.s.route("GET", "/test/public", "", who)
	e.s.route("POST", "/test/act", "operator", who)
	if tlsServer {
		e.srv = httptest.NewTLSServer(e.s)
	} else {
		e.srv = httptest.NewServer(e.s)
	}
	t.Cleanup(e.srv.Close)
	return e
}

func (e *authEnv) addUser(name, role string) {
	e.t.Helper()
	h, err := store.HashPassword(authPassword, bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.AddUser(context.Background(), name, role, h); err != nil {
		e.t.Fatal(err)
	}
}

func (e *authEnv) token(name, role string) string {
	e.t.Helper()
	tok, err := e.st.CreateToken(context.Background(), name, role)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Reveal()
}

// answer is one HTTP response, read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// req sends one request without following redirects. hdr is pairs of
// header names and values; "Cookie" sets the session cookie's value.
func (e *authEnv) req(method, path, body string, hdr ...string) answer {
	e.t.Helper()
	r, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Cookie" {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: hdr[i+1]})
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	c := e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// signin posts the sign-in form and returns the answer and the session
// cookie's value ("" when none was set).
func (e *authEnv) signin(form url.Values, hdr ...string) (answer, string) {
	e.t.Helper()
	a := e.req("POST", SigninPath, form.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
	if c := a.cookie(SessionCookie); c != nil && c.MaxAge >= 0 {
		return a, c.Value
	}
	return a, ""
}

// mustSignin signs in and returns the session id and its CSRF token.
func (e *authEnv) mustSignin(form url.Values) (id, csrf string) {
	e.t.Helper()
	a, id := e.signin(form)
	if a.status != http.StatusSeeOther || id == "" {
		e.t.Fatalf("sign-in: %d, cookie %q\n%s", a.status, id, a.body)
	}
	return id, csrfToken(id)
}

// TestServer_CSRF proves a session's state-changing requests need the
// session's own CSRF token, and bearer requests need none.
func TestServer_CSRF(t *testing.T) {
	e := newAuthEnv(t, false)
	id, csrf := e.mustSignin(url.Values{"token": {authConfigToken}})
	_, otherCSRF := e.mustSignin(url.Values{"token": {authConfigToken}})
	form := "Content-Type"
	tests := []struct {
		name string
		body string
		hdr  []string
		want int
		form string // what the handler read from the form
	}{
		{"no token", "x=1", []string{form, "application/x-www-form-urlencoded", "Cookie", id}, 403, ""},
		{"another session's token", "x=1&csrf=" + otherCSRF, []string{form, "application/x-www-form-urlencoded", "Cookie", id}, 403, ""},
		{"form field", "x=1&csrf=" + csrf, []string{form, "application/x-www-form-urlencoded", "Cookie", id}, 200, "1"},
		{"header", `{}`, []string{form, "application/json", "Cookie", id, CSRFHeader, csrf}, 200, ""},
		{"wrong header", `{}`, []string{form, "application/json", "Cookie", id, CSRFHeader, csrf + "x"}, 403, ""},
		{"JSON body, no header", `{"csrf":"` + csrf + `"}`, []string{form, "application/json", "Cookie", id}, 403, ""},
		{"bearer needs none", "x=2", []string{form, "application/x-www-form-urlencoded", "Authorization", "Bearer " + authConfigToken}, 200, ""},
		{"form too large", "x=" + strings.Repeat("a", 5000) + "&csrf=" + csrf, []string{form, "application/x-www-form-urlencoded", "Cookie", id}, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.req("POST", "/test/act", tt.body, tt.hdr...)
			if a.status != tt.want {
				t.Fatalf("= %d %s, want %d", a.status, a.body, tt.want)
			}
			if tt.want == 200 && tt.form != "" && !strings.Contains(a.body, "form="+tt.form) {
				t.Errorf("the handler did not see the form: %s", a.body)
			}
			if strings.Contains(a.body, csrf) || strings.Contains(a.body, id) {
				t.Errorf("the answer repeats the session's CSRF token or id: %s", a.body)
			}
		})
	}
	if a := e.req("GET", "/test/whoami", "", "Cookie", id); a.status != 200 {
		t.Errorf("GET with the session and no CSRF token = %d, want 200", a.status)
	}
}

func TestServer_Auth_Unsigned(t *testing.T) {
	e := newAuthEnv(t, false)
	id, csrf := e.mustSignin(url.Values{"token": {authConfigToken}})
	if a := e.req("POST", SignoutPath, "csrf="+csrf, "Content-Type", "application/x-www-form-urlencoded", "Cookie", id); a.status != 303 ||
		a.header.Get("Location") != SigninPath || a.cookie(SessionCookie) == nil || a.cookie(SessionCookie).MaxAge >= 0 {
		t.Fatalf("sign-out = %d to %q, cookie %+v", a.status, a.header.Get("Location"), a.cookie(SessionCookie))
	}
	tests := []struct {
		name, method, path string
		hdr                []string
		want               int
		location           string
	}{
		{"browser page, no session", "GET", "/test/whoami?a=b", []string{"Accept", "text/html,*/*"}, 303, "/signin?next=%2Ftest%2Fwhoami%3Fa%3Db"},
		{"browser page, signed out", "GET", "/test/whoami", []string{"Accept", "text/html", "Cookie", id}, 303, "/signin?next=%2Ftest%2Fwhoami"},
		{"script, no credentials", "GET", "/test/whoami", nil, 401, ""},
		{"script, signed-out session", "GET", "/test/whoami", []string{"Cookie", id}, 401, ""},
		{"browser form, no session", "POST", "/test/act", []string{"Accept", "text/html"}, 401, ""},
		{"basic auth", "GET", "/test/whoami", []string{"Authorization", "Basic YTpi"}, 401, ""},
		{"bad bearer beats a good cookie", "GET", "/test/whoami", []string{"Authorization", "Bearer nope-nope-nope", "Accept", "text/html"}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.req(tt.method, tt.path, "", tt.hdr...)
			if a.status != tt.want || a.header.Get("Location") != tt.location {
				t.Fatalf("= %d to %q, want %d to %q", a.status, a.header.Get("Location"), tt.want, tt.location)
			}
		})
	}
	// The sign-in page the redirect leads to.
	if a := e.req("GET", "/signin?next=/incidents", "", "Accept", "text/html"); a.status != 200 || !strings.Contains(a.body, `name="next" value="/incidents"`) ||
		!strings.Contains(a.body, `<label for="password">`) {
		t.Errorf("sign-in page = %d\n%s", a.status, a.body)
	}
	// Public routes see who is signed in without requiring it.
	if a := e.req("GET", "/test/public", ""); a.status != 200 || !strings.Contains(a.body, `"ok": false`) {
		t.Errorf("public route unsigned = %d %s", a.status, a.body)
	}
	if a := e.req("GET", "/test/public", "", "Authorization", "Bearer "+authConfigToken); !strings.Contains(a.body, `"name": "cfg-ops"`) {
		t.Errorf("public route with a token = %d %s", a.status, a.body)
	}
}

// TestServer_Session_EndsWithItsCredential proves a session dies with its
// token's revocation, its config token's removal, and its idle time.
func TestServer_Session_EndsWithItsCredential(t *testing.T) {
	e := newAuthEnv(t, false)
	dbTok := e.token("ci", "viewer")
	fromDB, _ := e.mustSignin(url.Values{"token": {dbTok}})
	fromConfig, _ := e.mustSignin(url.Values{"token": {authConfigToken}})
	if err := e.st.RevokeToken(context.Background(), "ci"); err != nil {
		t.Fatal(err)
	}
	if a := e.req("GET", "/test/whoami", "", "Cookie", fromDB); a.status != 401 {
		t.Errorf("session of a revoked token = %d", a.status)
	}
	if a := e.req("GET", "/test/whoami", "", "Authorization", "Bearer "+dbTok); a.status != 401 || strings.Contains(a.body, "ci") {
		t.Errorf("revoked bearer token = %d %s", a.status, a.body)
	}
	// The same database after a restart: a config-token session ends with
	// the process (and so with any change to the token).
	for name, tokens := range map[string][]Token{
		"token removed": nil,
		"token rotated": {{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken + "-rotated")}},
		"same config":   {{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken)}},
	} {
		restarted := New(Options{Store: e.st, Incidents: storeIncidents{e.st}, Tokens: tokens, Auth: &AuthOptions{Store: e.st}})
		restarted.route("GET", "/test/whoami", "viewer", func(w http.ResponseWriter, _ *http.Request) {})
		r := httptest.NewRequest("GET", "/test/whoami", nil)
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: fromConfig})
		w := httptest.NewRecorder()
		restarted.ServeHTTP(w, r)
		if w.Code != 401 {
			t.Errorf("%s: the config-token session after a restart = %d, want 401", name, w.Code)
		}
	}
	if a := e.req("GET", "/test/whoami", "", "Cookie", fromConfig); a.status != 200 {
		t.Fatalf("config-token session on the original server = %d", a.status)
	}
	e.clock.Add(12 * time.Hour)
	if a := e.req("GET", "/test/whoami", "", "Cookie", fromConfig); a.status != 401 || a.cookie(SessionCookie) == nil {
		t.Errorf("session idle 12h = %d (cookie cleared: %v)", a.status, a.cookie(SessionCookie) != nil)
	}
}

// TestServer_Session_ConfigTokenWithSessionSecret proves a config-token
// session signed in on one server works on another (or the same one
// restarted) that has the same session secret and the same token, and on
// no other.
func TestServer_Session_ConfigTokenWithSessionSecret(t *testing.T) {
	const secret = "a-session-secret-every-node-shares-0123456789"
	e := newAuthEnv(t, false, func(o *Options) { o.Auth.SessionSecret = secret })
	id, csrf := e.mustSignin(url.Values{"token": {authConfigToken}})
	cfgTok := []Token{{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken)}}
	tests := []struct {
		name   string
		tokens []Token
		secret fields.Secret
		want   int
	}{
		{"same secret, same token", cfgTok, secret, 200},
		{"same secret, token rotated", []Token{{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken + "-rotated")}}, secret, 401},
		{"same secret, token removed", nil, secret, 401},
		{"another secret", cfgTok, secret + "-other", 401},
		{"no secret", cfgTok, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := New(Options{Store: e.st, Incidents: storeIncidents{e.st}, Tokens: tt.tokens,
				Auth: &AuthOptions{Store: e.st, SessionSecret: tt.secret}})
			other.route("POST", "/test/act", "operator", func(w http.ResponseWriter, _ *http.Request) {})
			r := httptest.NewRequest("POST", "/test/act", strings.NewReader("csrf="+csrf))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
			w := httptest.NewRecorder()
			other.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("the config-token session on another server = %d, want %d", w.Code, tt.want)
			}
		})
	}
}
