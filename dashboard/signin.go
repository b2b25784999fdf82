package dashboard

import (
	"net/http"
	"strings"
)

// SignInView is what the sign-in page shows.
type SignInView struct {
	// Error says why the last attempt failed ("" on a first visit).
	Error string
	// Next is the dashboard path to return to after signing in.
	Next     string
	Username string
	// CSRF, when set, is sent back in the forms' csrf field.
	CSRF string
}

// SignIn renders the sign-in page, whose forms post username and password,
// or token, to POST /signin (the server's authentication handles that).
func (d *Dashboard) SignIn(w http.ResponseWriter, r *http.Request, status int, v SignInView) {
	v.Next = SafeNext(v.Next)
	w.Header().Set("Cache-Control", "no-store")
	secure(func(w http.ResponseWriter, r *http.Request) {
		d.render(w, r, status, "signin", "Sign in", v)
	})(w, r)
}

// SafeNext keeps a return path only when it stays on this site (a path
// starting with one slash), so a sign-in link cannot send people
// elsewhere afterwards.
func SafeNext(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/"
	}
	return p
}
