package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/server"
)

// tokenRow is one line of `crier tokens list --json`.
type tokenRow struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Revoked  time.Time `json:"revoked"`
	keys     map[string]json.RawMessage
}

func (h *harness) tokens() []tokenRow {
	h.t.Helper()
	r := h.mustRun("tokens", "list", "--json")
	var rows []tokenRow
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var t tokenRow
		if err := json.Unmarshal([]byte(line), &t); err != nil {
			h.t.Fatalf("tokens list --json: %v\n%s", err, r.stdout)
		}
		_ = json.Unmarshal([]byte(line), &t.keys)
		rows = append(rows, t)
	}
	return rows
}

// TestCLI_Tokens_Lifecycle creates a token, uses it against a running
// server, lists it (never the token itself) and revokes it while the
// server runs: the next request is refused.
func TestCLI_Tokens_Lifecycle(t *testing.T) {
	h := serveHarness(t)
	r := h.mustRun("tokens", "create", "--name", "ci", "--role", "viewer")
	tok := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(tok, "crier_") || len(tok) != 66 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("tokens create printed %q; want the token alone on stdout", r.stdout)
	}
	if !strings.Contains(r.stderr, "shown once") || strings.Contains(r.stderr, tok) {
		t.Errorf("tokens create stderr:\n%s", r.stderr)
	}
	list := h.mustRun("tokens", "list")
	if !strings.Contains(list.stdout, "ci") || !strings.Contains(list.stdout, "viewer") || strings.Contains(list.stdout, tok[6:22]) {
		t.Errorf("tokens list:\n%s", list.stdout)
	}

	s := startServe(t, h)
	if code, _, body := s.call(t, "GET", "/api/v1/incidents", tok, "", nil); code != http.StatusOK {
		t.Fatalf("GET with the new token: %d %s", code, body)
	}
	if code, _, _ := s.call(t, "POST", "/api/v1/incidents", tok, openBody, nil); code != http.StatusForbidden {
		t.Errorf("a viewer token opening an incident: %d, want 403", code)
	}
	rows := h.tokens()
	if len(rows) != 1 || rows[0].Name != "ci" || rows[0].Role != "viewer" || !rows[0].LastUsed.Equal(testEpoch()) || !rows[0].Revoked.IsZero() {
		t.Fatalf("tokens list --json = %+v; want ci, viewer, last used now", rows)
	}
	for k := range rows[0].keys {
		if k != "name" && k != "role" && k != "created" && k != "last_used" && k != "revoked" {
			t.Errorf("tokens list --json has a key %q", k)
		}
	}

	h.mustRun("tokens", "revoke", "ci")
	if code, _, body := s.call(t, "GET", "/api/v1/incidents", tok, "", nil); code != http.StatusUnauthorized || strings.Contains(string(body), tok) {
		t.Errorf("GET with the revoked token: %d %s, want 401", code, body)
	}
	if rows := h.tokens(); len(rows) != 1 || rows[0].Revoked.IsZero() {
		t.Errorf("after revoke: %+v", rows)
	}
	if strings.Contains(s.stderr.String(), tok) {
		t.Error("the server log contains the token")
	}
}

func TestCLI_Tokens_BadInput(t *testing.T) {
	h := serveHarness(t)
	h.mustRun("tokens", "create", "--name", "ci", "--role", "admin")
	tests := []struct {
		name   string
		args   []string
		code   int
		wantIn string
	}{
		{"no role", []string{"tokens", "create", "--name", "x"}, 2, "--role is required"},
		{"unknown role", []string{"tokens", "create", "--name", "x", "--role", "root"}, 2, `--role "root"`},
		{"bad name", []string{"tokens", "create", "--name", "x y", "--role", "viewer"}, 2, `--name "x y"`},
		{"no name", []string{"tokens", "create", "--role", "viewer"}, 2, `--name ""`},
		{"taken", []string{"tokens", "create", "--name", "ci", "--role", "viewer"}, 1, "exists"},
		{"a config token's name", []string{"tokens", "create", "--name", "test-desk", "--role", "viewer"}, 2, "server.tokens"},
		{"revoke unknown", []string{"tokens", "revoke", "nobody"}, 1, `no token named "nobody"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.wantIn) || r.stdout != "" {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit %d with %q", r.code, r.stderr, r.stdout, tt.code, tt.wantIn)
			}
		})
	}
	if rows := h.tokens(); len(rows) != 1 || rows[0].Role != "admin" {
		t.Errorf("tokens after refused creates: %+v", rows)
	}
}

// TestCLI_Users_SigninAndRemove adds a user with the password on stdin,
// signs in to a running server, and removes the user: the session ends.
func TestCLI_Users_SigninAndRemove(t *testing.T) {
	h := serveHarness(t)
	const password = "a long passphrase for the desk"
	h.base.stdin = strings.NewReader(password + "\n")
	r := h.mustRun("users", "add", "j.smith", "--role", "operator")
	if !strings.Contains(r.stdout, "added user j.smith (operator)") || strings.Contains(r.stdout+r.stderr, password) {
		t.Errorf("users add:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	h.base.stdin = nil
	if l := h.mustRun("users", "list"); !strings.Contains(l.stdout, "j.smith") || !strings.Contains(l.stdout, "operator") || strings.Contains(l.stdout, "$2a$") {
		t.Errorf("users list:\n%s", l.stdout)
	}

	s := startServe(t, h)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(s.base+server.SigninPath, url.Values{"username": {"j.smith"}, "password": {password}, "next": {"/api/v1/incidents"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == server.SessionCookie {
			session = c.Value
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == "" {
		t.Fatalf("sign-in: %d, session %q", resp.StatusCode, session)
	}
	get := func() int {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/incidents", nil)
		req.AddCookie(&http.Cookie{Name: server.SessionCookie, Value: session})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET with the session: %d", code)
	}
	h.mustRun("users", "remove", "j.smith")
	if code := get(); code != http.StatusUnauthorized {
		t.Errorf("GET with a removed user's session: %d, want 401", code)
	}
	if strings.Contains(s.stderr.String(), password) {
		t.Error("the server log contains the password")
	}
}

func TestCLI_Users_BadInput(t *testing.T) {
	h := exampleHarness(t)
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		wantIn string
	}{
		{"short password", "hunter2\n", []string{"users", "add", "bob", "--role", "viewer"}, 1, "use at least 12"},
		{"no password", "", []string{"users", "add", "bob", "--role", "viewer"}, 1, "no password on stdin"},
		{"password as a flag", "", []string{"users", "add", "bob", "--role", "viewer", "--password", "a long passphrase here"}, 2, "unknown flag: --password"},
		{"no role", "a long passphrase here\n", []string{"users", "add", "bob"}, 2, "--role is required"},
		{"bad name", "a long passphrase here\n", []string{"users", "add", "bob smith", "--role", "viewer"}, 2, `user name "bob smith"`},
		{"remove unknown", "", []string{"users", "remove", "nobody"}, 1, `no user named "nobody"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.base.stdin = strings.NewReader(tt.stdin)
			r := h.run(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.wantIn) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tt.code, tt.wantIn)
			}
			if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stderr, "a long passphrase here") {
				t.Errorf("the error repeats the password: %s", r.stderr)
			}
		})
	}
	h.base.stdin = nil
	if l := h.mustRun("users", "list", "--json"); strings.TrimSpace(l.stdout) != "" {
		t.Errorf("users after refused adds:\n%s", l.stdout)
	}
}
