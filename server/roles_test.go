package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/crier-dev/crier/dashboard"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// The role matrix: every route the server registers, built with every
// optional feature on, against every kind of caller. Routes behind a role
// let exactly the callers with that role or a higher one through; every
// refusal is a 401/403 (or, for a browser's page load, a redirect to the
// sign-in page) whose answer names no token, hash, session, password or
// user.

// Fakes for the features whose real implementation lives in cmd/crier;
// the matrix only needs them to answer.
type matrixPreflight struct{}

func (matrixPreflight) Preflight(context.Context, PreflightRequest) (dispatch.Preflight, error) {
	return dispatch.Preflight{}, nil
}

type matrixBroadcasts struct{}

func (matrixBroadcasts) Broadcast(context.Context, BroadcastRequest) (BroadcastResult, error) {
	return BroadcastResult{PreflightOnly: true}, nil
}

func (matrixBroadcasts) Progress(context.Context, string) (Progress, error) {
	return Progress{}, store.ErrNotFound
}

type matrixSubscribers struct{}

func (matrixSubscribers) Subscribers(context.Context) ([]subscribers.Subscriber, error) {
	return nil, nil
}

func (matrixSubscribers) SaveSubscribers(context.Context, []subscribers.Subscriber, SaveMode) (SaveResult, error) {
	return SaveResult{}, nil
}

type matrixSchedules struct{}

func (matrixSchedules) Schedules(context.Context, int) ([]Schedule, error) { return nil, nil }

func (matrixSchedules) FireBriefing(context.Context, string) (dispatch.Outcome, error) {
	return dispatch.Outcome{}, store.ErrNotFound
}

// matrixDashApp is the dashboard's App: incidents in the real store,
// nothing to broadcast.
type matrixDashApp struct{ storeIncidents }

func (matrixDashApp) Choices() dashboard.Choices { return dashboard.Choices{} }

func (matrixDashApp) Preflight(context.Context, dashboard.Compose) (dispatch.Preflight, error) {
	return dispatch.Preflight{}, nil
}

func (matrixDashApp) RepeatOf(context.Context, dashboard.Compose) (*store.Trigger, error) {
	return nil, nil
}

func (matrixDashApp) Broadcast(context.Context, dashboard.Compose) (dashboard.Sent, error) {
	return dashboard.Sent{}, ErrBadRequest
}

func (matrixDashApp) ExportLog(context.Context, store.LogFilter, io.Writer, string) error { return nil }

// matrixDashboard is the real dashboard; who asks the server built with
// its pages.
func matrixDashboard(t *testing.T, st *store.Store, who func(*http.Request) (Principal, bool)) []Page {
	t.Helper()
	d, err := dashboard.New(dashboard.Options{Read: st, App: matrixDashApp{storeIncidents{st}}, MaxStream: time.Second,
		Who: func(r *http.Request) (dashboard.Principal, bool) {
			p, ok := who(r)
			return dashboard.Principal{Name: p.Name, Role: p.Role, CSRF: p.CSRF}, ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	var pages []Page
	for _, p := range d.Pages() {
		pages = append(pages, Page(p))
	}
	return pages
}

// matrixOptions turns every optional feature on. When Options grows a
// field, set it here too: TestServer_RoleMatrix fails until every field is
// set, so no feature's routes escape the matrix.
func matrixOptions(st *store.Store, cfgTokens []Token) Options {
	return Options{
		Incidents: storeIncidents{st}, Store: st, Tokens: cfgTokens, MaxBody: 64 << 10,
		Ready: func() error { return nil }, ReadyDetail: func() string { return "" },
		Notify:    func() {},
		Log:       nil, // set by the test (it records log lines)
		Preflight: matrixPreflight{},
		Twilio: &TwilioOptions{AuthToken: "twilio-auth-token-matrix", PublicURL: "https://crier.example.org", Store: st,
			Replies: SMSReplies{HelpText: "help", UnknownText: "unknown", AckDigit: "1"}},
		Acks: &AckOptions{Tokens: dispatch.NewAckSigner("ack-secret-for-the-role-matrix-0123456789", time.Hour, "https://crier.example.org"),
			Store: st, SlackSigningSecret: "slack-signing-secret-matrix"},
		WebhookObserved: func(string, string) {},
		Metrics:         http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("# metrics\n")) }),
		Broadcasts:      matrixBroadcasts{},
		Subscribers:     matrixSubscribers{},
		Schedules:       matrixSchedules{},
		Auth:            &AuthOptions{Store: st, SigninPerAddress: 1000, SigninPerUser: 1000},
	}
}

// publicRoutes are the only routes allowed without sign-in: health,
// metrics, sign-in itself, the API's description, the dashboard's static
// files, and webhooks and acknowledgement links that carry their own
// signature. A new public route must be added here deliberately.
var publicRoutes = regexp.MustCompile(`^(/healthz|/readyz|/metrics|/signin|/api/v1/openapi\.json|/static/.*|/webhooks/.*|/ack/.*)$`)

// matrixCaller is one kind of caller.
type matrixCaller struct {
	name string
	role string // the role it signs in with; "" for none or invalid
	// session: signs in through POST /signin as a user of role; csrf says
	// whether its non-GET requests carry the CSRF token.
	session, csrf bool
	bearer        string // Authorization header value
	browser       bool   // Accept: text/html
}

// concretePath fills a route pattern's wildcards with plausible values.
func concretePath(pattern string) string {
	p := strings.TrimSuffix(pattern, "{$}")
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllStringFunc(p, func(w string) string {
		switch strings.Trim(w, "{}.") {
		case "id":
			return "INC-1"
		case "file":
			return "crier.css"
		}
		return "x1"
	})
}

func TestServer_RoleMatrix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	// Credentials: a config token, database tokens of every role (one
	// revoked), and users of every role.
	cfgTokens := []Token{{Name: "matrix-config-viewer", Role: "viewer", Value: "matrix-config-token-viewer-0123456789"}}
	secrets := []string{cfgTokens[0].Value.Reveal()}
	names := []string{cfgTokens[0].Name}
	bearer := map[string]string{}
	for _, role := range []string{"viewer", "operator", "admin", "revoked"} {
		r := role
		if role == "revoked" {
			r = "admin"
		}
		name := "matrix-token-" + role
		tok, err := st.CreateToken(ctx, name, r)
		if err != nil {
			t.Fatal(err)
		}
		bearer[role] = tok.Reveal()
		secrets = append(secrets, tok.Reveal(), tok.Reveal()[len(tok.Reveal())-43:])
		names = append(names, name)
	}
	if err := st.RevokeToken(ctx, "matrix-token-revoked"); err != nil {
		t.Fatal(err)
	}
	const password = "matrix password for every user"
	secrets = append(secrets, password)
	for _, role := range []string{"viewer", "operator", "admin"} {
		h, err := store.HashPassword(password, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddUser(ctx, "matrix-user-"+role, role, h); err != nil {
			t.Fatal(err)
		}
		names = append(names, "matrix-user-"+role)
	}
	for _, tok := range append([]string{cfgTokens[0].Value.Reveal()}, bearer["viewer"], bearer["operator"], bearer["admin"], bearer["revoked"]) {
		sum := sha256.Sum256([]byte(tok))
		secrets = append(secrets, hex.EncodeToString(sum[:]), strings.ToUpper(hex.EncodeToString(sum[:])),
			base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]))
	}

	o := matrixOptions(st, cfgTokens)
	var s *Server
	o.Dashboard = matrixDashboard(t, st, func(r *http.Request) (Principal, bool) { return s.Principal(r) })
	var logs syncLog
	o.Log = logs.logger()
	ov := reflect.ValueOf(o)
	for i := range ov.NumField() {
		if ov.Field(i).IsZero() {
			t.Errorf("matrixOptions leaves Options.%s unset: set it, so the routes it adds are in the role matrix", ov.Type().Field(i).Name)
		}
	}
	s = New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// signin signs a user in through the real form and returns the cookie.
	var sessions []string
	signin := func(role string) string {
		form := url.Values{"username": {"matrix-user-" + role}, "password": {password}}
		resp, err := client.PostForm(srv.URL+SigninPath, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == SessionCookie && c.Value != "" {
				sessions = append(sessions, c.Value, csrfToken(c.Value))
				return c.Value
			}
		}
		t.Fatalf("sign-in as %s: %d, no session cookie", role, resp.StatusCode)
		return ""
	}

	callers := []matrixCaller{
		{name: "no credentials"},
		{name: "browser, no credentials", browser: true},
		{name: "unknown token", bearer: "Bearer crier_0123456789abcdef_" + strings.Repeat("Q", 43)},
		{name: "not a token", bearer: "Bearer letmein"},
		{name: "basic auth", bearer: "Basic bWF0cml4OnBhc3N3b3Jk"},
		{name: "revoked token", bearer: "Bearer " + bearer["revoked"]},
		{name: "config viewer token", role: "viewer", bearer: "Bearer " + cfgTokens[0].Value.Reveal()},
		{name: "viewer token", role: "viewer", bearer: "Bearer " + bearer["viewer"]},
		{name: "operator token", role: "operator", bearer: "Bearer " + bearer["operator"]},
		{name: "admin token", role: "admin", bearer: "Bearer " + bearer["admin"]},
		{name: "viewer session", role: "viewer", session: true, csrf: true, browser: true},
		{name: "operator session", role: "operator", session: true, csrf: true, browser: true},
		{name: "admin session", role: "admin", session: true, csrf: true, browser: true},
		{name: "admin session without CSRF", role: "admin", session: true, browser: true},
	}

	routes := s.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	// own is the caller's own CSRF token: its pages rightly carry it in
	// their forms, error pages too.
	type refusal struct{ where, text, own string }
	var refusals, errorsSeen []refusal
	for _, rt := range routes {
		path := concretePath(rt.Pattern)
		if rt.Role == "" {
			if !publicRoutes.MatchString(path) {
				t.Errorf("%s %s is public (no role): add it to publicRoutes if that is deliberate, or give it a role", rt.Method, rt.Pattern)
			}
			continue
		}
		if roleRank[rt.Role] == 0 {
			t.Errorf("%s %s needs role %q, which is no role", rt.Method, rt.Pattern, rt.Role)
			continue
		}
		safe := safeMethod(rt.Method)
		for _, c := range callers {
			where := fmt.Sprintf("%s %s as %s", rt.Method, path, c.name)
			own := "\x00"
			var body io.Reader
			if !safe {
				body = strings.NewReader("{}")
			}
			req, err := http.NewRequest(rt.Method, srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			if !safe {
				req.Header.Set("Content-Type", "application/json")
			}
			if c.browser {
				req.Header.Set("Accept", "text/html,application/xhtml+xml")
			}
			if c.bearer != "" {
				req.Header.Set("Authorization", c.bearer)
			}
			if c.session {
				id := signin(c.role)
				own = csrfToken(id)
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
				if c.csrf {
					req.Header.Set(CSRFHeader, csrfToken(id))
				}
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var text string
			if resp.StatusCode >= 300 {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				var hdr strings.Builder
				resp.Header.Write(&hdr)
				text = hdr.String() + "\n" + string(b)
			}
			resp.Body.Close() // an allowed event stream is not read

			allowed := c.role != "" && roleRank[c.role] >= roleRank[rt.Role] && (safe || !c.session || c.csrf)
			got := resp.StatusCode
			switch {
			case allowed && (got == 401 || got == 403 || isSigninRedirect(resp)):
				t.Errorf("%s: %d (%s), want it let through", where, got, resp.Header.Get("Location"))
			case !allowed && c.browser && c.role == "" && safe:
				if !isSigninRedirect(resp) {
					t.Errorf("%s: %d, want 303 to %s", where, got, SigninPath)
				}
			case !allowed && c.role == "" && got != 401:
				t.Errorf("%s: %d, want 401", where, got)
			case !allowed && c.role != "" && got != 403:
				t.Errorf("%s: %d, want 403", where, got)
			}
			if !allowed {
				refusals = append(refusals, refusal{where, text, own})
			} else if got >= 400 {
				errorsSeen = append(errorsSeen, refusal{where, text, own})
			}
		}
	}

	// Nothing secret in any refusal, nor in any error of an allowed call;
	// refusals also name nobody.
	var dbSecrets []string
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "crier.db")+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`SELECT password_hash FROM users`, `SELECT hex(hash) FROM api_tokens`, `SELECT selector FROM api_tokens`, `SELECT hex(hash) FROM sessions`} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			dbSecrets = append(dbSecrets, v, strings.ToLower(v))
		}
		rows.Close()
	}
	all := append(append(append([]string(nil), secrets...), sessions...), dbSecrets...)
	for _, r := range refusals {
		for _, s := range append(all, names...) {
			if strings.Contains(r.text, s) {
				t.Errorf("%s: the refusal contains %q", r.where, s)
			}
		}
	}
	for _, r := range errorsSeen {
		for _, s := range all {
			if s != r.own && strings.Contains(r.text, s) {
				t.Errorf("%s: the error answer contains %q", r.where, s)
			}
		}
	}
	for _, s := range all {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the server log contains %q", s)
		}
	}
	t.Logf("%d routes × %d callers; %d refusals, %d errors of allowed calls checked for leaks", len(routes), len(callers), len(refusals), len(errorsSeen))
}

func isSigninRedirect(resp *http.Response) bool {
	return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), SigninPath+"?next=")
}

// syncLog collects the server's log lines (written from its goroutines).
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
