package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServer_Signin_Ways(t *testing.T) {
	e := newAuthEnv(t, false)
	e.addUser("alice", "admin")
	dbTok := e.token("ci", "viewer")
	tests := []struct {
		name     string
		form     url.Values
		wantWho  string
		wantRole string
	}{
		{"config token", url.Values{"token": {authConfigToken}}, "cfg-ops", "operator"},
		{"database token", url.Values{"token": {dbTok}}, "ci", "viewer"},
		{"username and password", url.Values{"username": {"alice"}, "password": {authPassword}}, "alice", "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("next", "/test/whoami?x=1")
			a, id := e.signin(tt.form)
			if a.status != http.StatusSeeOther || a.header.Get("Location") != "/test/whoami?x=1" {
				t.Fatalf("sign-in = %d to %q, want 303 to next", a.status, a.header.Get("Location"))
			}
			c := a.cookie(SessionCookie)
			if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || len(id) != 43 {
				t.Fatalf("cookie = %+v; want HttpOnly, SameSite=Lax, Path=/, not Secure over plain http", c)
			}
			got := e.req("GET", "/test/whoami", "", "Cookie", id)
			want := `"name": "` + tt.wantWho + `"`
			if got.status != 200 || !strings.Contains(got.body, want) || !strings.Contains(got.body, `"role": "`+tt.wantRole+`"`) ||
				!strings.Contains(got.body, `"session": true`) || !strings.Contains(got.body, `"csrf": true`) {
				t.Errorf("whoami with the session = %d %s; want %s, role %s", got.status, got.body, want, tt.wantRole)
			}
		})
	}
}

func TestServer_Signin_Failures(t *testing.T) {
	e := newAuthEnv(t, false, func(o *Options) { o.Auth.SigninPerAddress, o.Auth.SigninPerUser = 100, 100 })
	e.addUser("alice", "admin")
	revoked := e.token("old", "admin")
	if err := e.st.RevokeToken(context.Background(), "old"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"wrong password", url.Values{"username": {"alice"}, "password": {authPassword + "x"}}, nil, 401},
		{"unknown user", url.Values{"username": {"mallory"}, "password": {authPassword}}, nil, 401},
		{"bad token", url.Values{"token": {"crier_0123456789abcdef_" + strings.Repeat("A", 43)}}, nil, 401},
		{"revoked token", url.Values{"token": {revoked}}, nil, 401},
		{"nothing", url.Values{"username": {"alice"}}, nil, 400},
		{"another site's form", url.Values{"username": {"alice"}, "password": {authPassword}}, []string{"Origin", "https://evil.example"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, id := e.signin(tt.form, tt.hdr...)
			if a.status != tt.want || id != "" {
				t.Fatalf("sign-in = %d, cookie %q; want %d and no session", a.status, id, tt.want)
			}
			// The typed username is kept in the form; the password and
			// token are never echoed.
			for _, secret := range []string{authPassword, revoked} {
				if strings.Contains(a.body, secret) {
					t.Errorf("the answer repeats %q", secret)
				}
			}
		})
	}
	// The same origin is fine (the browser sends it with every POST).
	if a, id := e.signin(url.Values{"username": {"alice"}, "password": {authPassword}}, "Origin", e.srv.URL); a.status != 303 || id == "" {
		t.Errorf("same-origin sign-in = %d", a.status)
	}
}

// TestServer_Signin_RateLimited proves failures from one address are
// limited (even a right password waits), other addresses are not, and
// failures older than the window no longer count.
func TestServer_Signin_RateLimited(t *testing.T) {
	e := newAuthEnv(t, false) // 3 failures an address, 5 a user, in any minute
	e.addUser("alice", "admin")
	e.addUser("bob", "viewer")
	const attacker, other = "192.0.2.7:4000", "198.51.100.9:4000"
	steps := []struct {
		advance  time.Duration
		remote   string
		user     string
		password string
		want     int
	}{
		{0, attacker, "alice", "guess-number-1", 401},
		{0, attacker, "alice", "guess-number-2", 401},
		{0, attacker, "alice", "guess-number-3", 401},
		{0, attacker, "alice", "guess-number-4", 429},
		{0, attacker, "alice", authPassword, 429}, // not even checked
		{0, attacker, "bob", authPassword, 429},   // the address is limited, whoever it signs in as
		{0, other, "alice", authPassword, 303},
		{30 * time.Second, attacker, "alice", authPassword, 429},
		{30 * time.Second, attacker, "alice", "guess-number-5", 401}, // the first three are a minute old
		{0, attacker, "alice", "guess-number-6", 401},
		{0, attacker, "alice", "guess-number-7", 401},
		{0, attacker, "alice", "guess-number-8", 429},
		{time.Minute, attacker, "alice", authPassword, 303},
		{0, "[2001:db8:1:2::1]:4000", "bob", "guess-v6", 401},
		{0, "[2001:db8:1:2::2]:4000", "bob", "guess-v6", 401},
		{0, "[2001:db8:1:2::3]:4000", "bob", "guess-v6", 401},
		{0, "[2001:db8:1:2::4]:4000", "bob", "guess-v6", 429}, // same /64
		{0, "[2001:db8:1:3::4]:4000", "bob", "guess-v6", 401},
	}
	for i, s := range steps {
		e.clock.Add(s.advance)
		w := e.post(s.remote, url.Values{"username": {s.user}, "password": {s.password}})
		if w.Code != s.want {
			t.Fatalf("step %d (%s): %d, want %d\n%s", i, s.remote, w.Code, s.want, w.Body.String())
		}
		if s.want == 429 && w.Header().Get("Retry-After") == "" {
			t.Errorf("step %d: 429 without Retry-After", i)
		}
	}
}

// TestServer_Signin_UserLimited proves guesses at one user spread over
// many addresses are limited too, while that user's token and other users
// are not; and that a success is not counted.
func TestServer_Signin_UserLimited(t *testing.T) {
	e := newAuthEnv(t, false) // 3 failures an address, 5 a user, in any minute
	e.addUser("alice", "admin")
	e.addUser("bob", "viewer")
	tok := e.token("alice-ci", "viewer")
	from := func(i int) string { return fmt.Sprintf("203.0.113.%d:5000", i) }
	for i := range 4 {
		if w := e.post(from(i), url.Values{"username": {"alice"}, "password": {fmt.Sprintf("spread-guess-%d", i)}}); w.Code != 401 {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	// Successes in between are not failures.
	for i := range 3 {
		if w := e.post(from(50), url.Values{"username": {"alice"}, "password": {authPassword}}); w.Code != 303 {
			t.Fatalf("right password %d: %d", i, w.Code)
		}
	}
	if w := e.post(from(4), url.Values{"username": {"alice"}, "password": {"spread-guess-4"}}); w.Code != 401 {
		t.Fatalf("the fifth failure: %d", w.Code)
	}
	steps := []struct {
		name string
		form url.Values
		want int
	}{
		{"alice from a new address", url.Values{"username": {"alice"}, "password": {authPassword}}, 429},
		{"a user name alike but not the same", url.Values{"username": {"Alice"}, "password": {"guess"}}, 401},
		{"bob", url.Values{"username": {"bob"}, "password": {authPassword}}, 303},
		{"a token", url.Values{"token": {tok}}, 303},
	}
	for i, s := range steps {
		if w := e.post(from(100+i), s.form); w.Code != s.want {
			t.Errorf("%s: %d, want %d", s.name, w.Code, s.want)
		}
	}
	e.clock.Add(time.Minute)
	if w := e.post(from(200), url.Values{"username": {"alice"}, "password": {authPassword}}); w.Code != 303 {
		t.Errorf("alice a minute later: %d", w.Code)
	}
}

// post sends the sign-in form from remote, straight to the handler.
func (e *authEnv) post(remote string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", SigninPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	return w
}

func TestServer_Signin_NextStaysLocal(t *testing.T) {
	e := newAuthEnv(t, false)
	for next, want := range map[string]string{
		"/incidents/INC-1":       "/incidents/INC-1",
		"//evil.example/x":       "/",
		"https://evil.example/x": "/",
		`/\evil.example`:         "/",
		"":                       "/",
		"javascript:alert(1)":    "/",
	} {
		a, _ := e.signin(url.Values{"token": {authConfigToken}, "next": {next}})
		if got := a.header.Get("Location"); got != want {
			t.Errorf("next %q: redirected to %q, want %q", next, got, want)
		}
	}
}

func TestServer_SessionCookie_Secure(t *testing.T) {
	tests := []struct {
		name      string
		tls       bool
		publicURL string
	}{
		{"served over TLS", true, ""},
		{"TLS at a proxy (public_url https)", false, "https://crier.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuthEnv(t, tt.tls, func(o *Options) { o.Auth.PublicURL = tt.publicURL })
			a, _ := e.signin(url.Values{"token": {authConfigToken}})
			if c := a.cookie(SessionCookie); c == nil || !c.Secure || !c.HttpOnly {
				t.Fatalf("cookie = %+v, want Secure and HttpOnly", c)
			}
		})
	}
}

// TestServer_Signin_ParallelGuesses proves guesses sent all at once are
// counted before any is checked: only the allowance gets a bcrypt check.
func TestServer_Signin_ParallelGuesses(t *testing.T) {
	e := newAuthEnv(t, false) // 3 failures an address in any minute; the clock stands still
	e.addUser("alice", "admin")
	const n = 12
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"username": {"alice"}, "password": {fmt.Sprintf("parallel-guess-%d", i)}}
			r := httptest.NewRequest("POST", SigninPath, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = "192.0.2.99:5000"
			w := httptest.NewRecorder()
			e.s.ServeHTTP(w, r)
			codes <- w.Code
		}()
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[401] != 3 || got[429] != n-3 {
		t.Errorf("%d parallel guesses: %v, want 3 checked (401) and %d refused (429)", n, got, n-3)
	}
}
