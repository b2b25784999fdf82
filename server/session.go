package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// Dashboard sign-in: POST /signin with a token, or a username and
// password, starts a session (a random id in the crier_session cookie,
// stored hashed); POST /signout ends it. Failed sign-ins are limited per
// remote address and per user name, counted in the database so that the
// limits hold for every crier server on it.

// SigninPage is what the sign-in page shows. The form posts to SigninPath
// with fields "token", or "username" and "password", and "next".
type SigninPage struct {
	Status     int           // the HTTP status to answer with
	Error      string        // what went wrong, for people; "" on a first visit
	Next       string        // where to go after signing in: a local path
	Username   string        // the name typed last time, to keep in the form
	RetryAfter time.Duration // after too many failures: how long to wait
}

// errBadCredentials is a sign-in whose token or password did not match.
var errBadCredentials = errors.New("bad credentials")

// registerAuth serves sign-in and sign-out when AuthOptions are set.
func (s *Server) registerAuth() {
	if s.o.Auth == nil {
		return
	}
	s.route("GET", SigninPath, "", s.signinForm)
	s.route("POST", SigninPath, "", s.signin)
	s.route("POST", SignoutPath, "viewer", s.signout)
}

func (s *Server) signinForm(w http.ResponseWriter, r *http.Request) {
	s.showSignin(w, r, SigninPage{Status: http.StatusOK, Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	a := s.o.Auth
	if !s.sameOrigin(r) {
		// Another site's form signing this browser in to an account of
		// the attacker's choosing ("login CSRF").
		s.showSignin(w, r, SigninPage{Status: http.StatusForbidden, Error: "Sign-in must come from crier's own sign-in page.", Next: "/"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.showSignin(w, r, SigninPage{Status: http.StatusBadRequest, Error: "The sign-in form could not be read; reload the page and try again.", Next: "/"})
		return
	}
	f := r.PostForm
	page := SigninPage{Next: safeNext(f.Get("next")), Username: f.Get("username")}
	token, user, password := strings.TrimSpace(f.Get("token")), f.Get("username"), fields.Secret(f.Get("password"))
	ip := remoteKey(r)
	limits := []store.SigninLimit{{Key: "addr:" + ip, Max: a.SigninPerAddress}}
	var how string
	switch {
	case token != "":
		how = "token"
	case user != "" && password.IsSet():
		how = "password"
		limits = append(limits, store.SigninLimit{Key: userLimitKey(user), Max: a.SigninPerUser})
	default:
		page.Status, page.Error = http.StatusBadRequest, "Enter an API token, or a username and a password."
		s.showSignin(w, r, page)
		return
	}
	// Every guess is counted as a failure before it is checked, so a
	// thousand sent at once, to this server or spread over several on
	// the same database, cannot all be checked before the first failure
	// is counted; a success, or a check that could not be made, is taken
	// back.
	attempt, wait, err := a.Store.BeginSignin(r.Context(), a.SigninWindow, limits...)
	if err != nil {
		s.o.Log.Error("sign-in: count the attempt", "err", err)
		page.Status, page.Error = http.StatusInternalServerError, "Sign-in is not working right now; see the server log."
		s.showSignin(w, r, page)
		return
	}
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.o.Log.Warn("sign-in refused: too many failures", "with", how, "remote", ip)
		page.Status, page.RetryAfter = http.StatusTooManyRequests, wait
		page.Error = fmt.Sprintf("Too many failed sign-ins from this address or for this user. Wait %d seconds, then try again.", secs)
		s.showSignin(w, r, page)
		return
	}
	var kind, subject, role string
	var binding []byte
	if how == "token" {
		kind, subject, role, binding, err = s.signinToken(r, token)
	} else {
		var u store.User
		u, err = a.Store.CheckPassword(r.Context(), user, password)
		if errors.Is(err, store.ErrBadPassword) {
			err = errBadCredentials
		}
		kind, subject, role = store.SessionUser, u.Name, u.Role
	}
	if errors.Is(err, errBadCredentials) {
		s.o.Log.Warn("sign-in failed", "with", how, "remote", ip)
		page.Status, page.Error = http.StatusUnauthorized, "Sign-in failed: that token, or that username and password, is not right."
		s.showSignin(w, r, page)
		return
	}
	if ferr := a.Store.ForgetSignin(context.WithoutCancel(r.Context()), attempt); ferr != nil {
		s.o.Log.Error("sign-in: take back the attempt", "err", ferr)
	}
	if err != nil {
		s.o.Log.Error("sign-in", "err", err)
		page.Status, page.Error = http.StatusInternalServerError, "Sign-in is not working right now; see the server log."
		s.showSignin(w, r, page)
		return
	}
	// A fresh id on every sign-in: an id planted in the browser before
	// (session fixation) never becomes a signed-in one.
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		_ = a.Store.DeleteSession(r.Context(), c.Value)
	}
	id, _, err := a.Store.CreateSession(r.Context(), kind, subject, role, binding, a.SessionIdle)
	if err != nil {
		s.o.Log.Error("sign-in: create session", "err", err)
		page.Status, page.Error = http.StatusInternalServerError, "Sign-in is not working right now; see the server log."
		s.showSignin(w, r, page)
		return
	}
	s.o.Log.Info("signed in", "who", subject, "kind", kind, "role", role, "remote", ip)
	http.SetCookie(w, s.sessionCookie(r, id.Reveal(), 0))
	http.Redirect(w, r, page.Next, http.StatusSeeOther)
}

// signinToken checks a token typed into the sign-in form: a config token
// (its session bound to the token's value) or a database token.
func (s *Server) signinToken(r *http.Request, token string) (kind, subject, role string, binding []byte, err error) {
	if t := s.matchConfigToken(token); t != nil {
		return store.SessionConfig, t.Name, t.Role, s.configBinding(t), nil
	}
	if !store.LooksLikeToken(token) {
		return "", "", "", nil, errBadCredentials
	}
	dt, err := s.o.Auth.Store.UseToken(r.Context(), token)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrRevoked) {
		return "", "", "", nil, errBadCredentials
	}
	return store.SessionToken, dt.Name, dt.Role, nil, err
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if p, _ := s.Principal(r); !p.Session {
		w.WriteHeader(http.StatusNoContent) // a bearer token has nothing to sign out of
		return
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if err := s.o.Auth.Store.DeleteSession(r.Context(), c.Value); err != nil {
			s.fail(w, err)
			return
		}
	}
	http.SetCookie(w, s.sessionCookie(r, "", -1))
	http.Redirect(w, r, SigninPath, http.StatusSeeOther)
}

// sameOrigin accepts a sign-in without an Origin header (older clients,
// scripts) or with crier's own origin: the request's host or the public URL's.
func (s *Server) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	pub, err := url.Parse(s.o.Auth.PublicURL)
	return err == nil && pub.Host != "" && strings.EqualFold(u.Host, pub.Host)
}

// safeNext keeps only local paths ("/incidents/INC-1"), so a sign-in link
// cannot send a person on to another site ("//evil.example", "https://…").
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n\t") {
		return "/"
	}
	return next
}

// remoteKey is the address failed sign-ins are counted by: the peer's IP,
// or for IPv6 its /64, which one machine commonly has whole. The
// X-Forwarded-For header is not trusted: anyone can write it.
func remoteKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// userLimitKey is what failed sign-ins for the user name typed are
// counted under: a hash, so the database does not keep what people typed
// in the name field (sometimes their password), only long enough to
// count it.
func userLimitKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "user:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

var signinTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · crier</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#111}
label{display:block;margin-top:.75rem;font-weight:600}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.25rem;font-size:1rem}fieldset{margin-top:1rem}.error{color:#8b0000;font-weight:600}</style></head>
<body><main><h1>Sign in to crier</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="` + SigninPath + `"><input type="hidden" name="next" value="{{.Next}}">
<fieldset><legend>With a username and password</legend>
<label for="username">Username</label><input id="username" name="username" autocomplete="username" value="{{.Username}}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">
</fieldset>
<fieldset><legend>Or with an API token</legend>
<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="off">
</fieldset>
<button type="submit">Sign in</button></form></main></body></html>
`))

// showSignin renders the sign-in page through the dashboard's hook, or the
// built-in page.
func (s *Server) showSignin(w http.ResponseWriter, r *http.Request, p SigninPage) {
	w.Header().Set("Cache-Control", "no-store")
	if s.o.Auth.SigninPage != nil {
		s.o.Auth.SigninPage(w, r, p)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.Status)
	_ = signinTmpl.Execute(w, p)
}
