package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// storeIncidents changes incidents in the real store (without planning
// alerts, which the CLI tests cover end to end).
type storeIncidents struct{ st *store.Store }

func (s storeIncidents) OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error) {
	inc, err := incidents.Open(c, time.Now())
	if err != nil {
		return dispatch.IncidentResult{}, err
	}
	err = s.st.Write(ctx, func(tx *store.Tx) error { return tx.CreateIncident(inc) })
	return dispatch.IncidentResult{Incident: inc, Update: inc.Timeline[0]}, err
}

func (s storeIncidents) ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (dispatch.IncidentResult, error) {
	var res dispatch.IncidentResult
	err := s.st.Write(ctx, func(tx *store.Tx) error {
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		u, err := inc.Apply(kind, c, time.Now())
		if err != nil {
			return err
		}
		res = dispatch.IncidentResult{Incident: inc, Update: u}
		return tx.SaveIncidentUpdate(inc, u)
	})
	return res, err
}

const (
	viewerToken   = "viewer-token-0123456789"
	operatorToken = "operator-token-0123456789"
)

func newServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := New(Options{Incidents: storeIncidents{st}, Store: st, MaxBody: 4096, Tokens: []Token{
		{Name: "dash", Role: "viewer", Value: fields.Secret(viewerToken)},
		{Name: "ops", Role: "operator", Value: fields.Secret(operatorToken)},
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, srv *httptest.Server, method, path, token, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer_Auth_RoutesByRole(t *testing.T) {
	srv, _ := newServer(t)
	open := `{"title":"Helpline down","severity":"critical"}`
	tests := []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/api/v1/incidents", "", "", 401},
		{"GET", "/api/v1/incidents", "wrong-token-0123456789", "", 401},
		{"GET", "/api/v1/incidents", viewerToken, "", 200},
		{"GET", "/api/v1/deliveries", viewerToken, "", 200},
		{"POST", "/api/v1/incidents", viewerToken, open, 403},
		{"POST", "/api/v1/incidents", "", open, 401},
		{"POST", "/api/v1/incidents", operatorToken, open, 201},
		{"GET", "/api/v1/incidents/INC-1", viewerToken, "", 200},
		{"GET", "/api/v1/incidents/INC-9", viewerToken, "", 404},
		{"POST", "/api/v1/incidents/INC-1/updates", viewerToken, `{"text":"x"}`, 403},
		{"POST", "/api/v1/incidents/INC-1/updates", operatorToken, `{"text":"isolated"}`, 200},
		{"POST", "/api/v1/incidents/INC-1/resolve", operatorToken, `{}`, 200},
		{"GET", "/api/v1/nothing", viewerToken, "", 404},
	}
	for _, tt := range tests {
		code, body := do(t, srv, tt.method, tt.path, tt.token, tt.body)
		if code != tt.want {
			t.Errorf("%s %s with %q: %d %s, want %d", tt.method, tt.path, tt.token, code, body, tt.want)
		}
		for _, secret := range []string{viewerToken, operatorToken} {
			if strings.Contains(body, secret) {
				t.Errorf("%s %s: response contains a token", tt.method, tt.path)
			}
		}
	}
}

func TestServer_OpenIncident_BadInput(t *testing.T) {
	srv, st := newServer(t)
	tests := []struct {
		name, body string
		want       int
		field      string
	}{
		{"unknown field", `{"title":"x","severity":"minor","colour":"red"}`, 400, "colour"},
		{"wrong type", `{"title":"x","severity":3}`, 400, "severity"},
		{"not json", `title=x`, 400, ""},
		{"too large", `{"title":"` + strings.Repeat("x", 5000) + `"}`, 413, ""},
		{"invalid severity", `{"title":"x","severity":"urgent"}`, 422, "severity"},
		{"missing title", `{"severity":"minor"}`, 422, "title"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, srv, "POST", "/api/v1/incidents", operatorToken, tt.body)
			if code != tt.want {
				t.Fatalf("status %d (%s), want %d", code, body, tt.want)
			}
			var e struct{ Error apiError }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("error body %q is not {\"error\":{…}}", body)
			}
			if e.Error.Field != tt.field {
				t.Fatalf("field = %q, want %q (%s)", e.Error.Field, tt.field, body)
			}
		})
	}
	list, _ := st.Incidents(context.Background(), false)
	if len(list) != 0 {
		t.Fatalf("%d incidents stored after bad requests, want 0", len(list))
	}
}

func TestServer_IdempotencyKey_ReplaysWithoutActingTwice(t *testing.T) {
	srv, st := newServer(t)
	body := `{"title":"Helpline down","severity":"major"}`
	c1, b1 := do(t, srv, "POST", "/api/v1/incidents", operatorToken, body, "Idempotency-Key", "k-1")
	c2, b2 := do(t, srv, "POST", "/api/v1/incidents", operatorToken, body, "Idempotency-Key", "k-1")
	if c1 != 201 || c2 != 201 || b1 != b2 {
		t.Fatalf("first %d, replay %d; bodies equal %v", c1, c2, b1 == b2)
	}
	c3, _ := do(t, srv, "POST", "/api/v1/incidents", operatorToken, `{"title":"Other","severity":"major"}`, "Idempotency-Key", "k-1")
	if c3 != 422 {
		t.Fatalf("same key, different body: %d, want 422", c3)
	}
	list, _ := st.Incidents(context.Background(), false)
	if len(list) != 1 {
		t.Fatalf("%d incidents, want 1", len(list))
	}
}

// gate holds a request inside OpenIncident until the other request of a
// pair has either entered OpenIncident too or been answered: without a
// claim on the key both would act, with one the other is answered first.
type gate struct {
	mu     sync.Mutex
	events int
	open   chan struct{}
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) event() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.events++; g.events == 2 {
		close(g.open)
	}
}

// gatedIncidents opens incidents in the real store once the gate opens;
// fail makes it answer with an internal error instead.
type gatedIncidents struct {
	storeIncidents
	gate  *gate
	fail  atomic.Bool
	calls atomic.Int32
}

func (g *gatedIncidents) OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error) {
	g.calls.Add(1)
	g.gate.event()
	select {
	case <-g.gate.open:
	case <-ctx.Done():
		return dispatch.IncidentResult{}, ctx.Err()
	case <-time.After(10 * time.Second): // a guard against a hung test, not an assertion
		return dispatch.IncidentResult{}, errors.New("gate never opened")
	}
	if g.fail.Load() {
		return dispatch.IncidentResult{}, errors.New("database is on fire")
	}
	return g.storeIncidents.OpenIncident(ctx, c)
}

// newGatedServer is newServer with gatedIncidents; every answered request
// counts as a gate event.
func newGatedServer(t *testing.T) (*httptest.Server, *store.Store, *gatedIncidents) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inc := &gatedIncidents{storeIncidents: storeIncidents{st}, gate: newGate()}
	h := New(Options{Incidents: inc, Store: st, MaxBody: 4096, Tokens: []Token{
		{Name: "ops", Role: "operator", Value: fields.Secret(operatorToken)},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		inc.gate.event()
	}))
	t.Cleanup(srv.Close)
	return srv, st, inc
}

func TestServer_IdempotencyKey_ConcurrentActsOnce(t *testing.T) {
	srv, st, inc := newGatedServer(t)
	body := `{"title":"Helpline down","severity":"major"}`
	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			// do's t.Fatal must not run off the test goroutine: errors come back as code 0.
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/incidents", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+operatorToken)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "k-race")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	a, b := <-answers, <-answers
	if a.code != 201 {
		a, b = b, a
	}
	if a.code != 201 {
		t.Fatalf("answers %d %s and %d %s, want one 201", a.code, a.body, b.code, b.body)
	}
	switch {
	case b.code == 409 && strings.Contains(b.body, "idempotency_key_in_progress"):
	case b.code == 201 && b.body == a.body: // the replay
	default:
		t.Errorf("second answer %d %s, want 409 idempotency_key_in_progress or the replay", b.code, b.body)
	}
	if n := inc.calls.Load(); n != 1 {
		t.Errorf("OpenIncident ran %d times, want 1", n)
	}
	list, _ := st.Incidents(context.Background(), false)
	if len(list) != 1 {
		t.Errorf("%d incidents, want 1", len(list))
	}
	// Once answered, the key replays.
	code, replay := do(t, srv, "POST", "/api/v1/incidents", operatorToken, body, "Idempotency-Key", "k-race")
	if code != 201 || replay != a.body {
		t.Errorf("later retry: %d %s, want the replay of %s", code, replay, a.body)
	}
}

func TestServer_IdempotencyKey_ServerErrorFreesKey(t *testing.T) {
	srv, st, inc := newGatedServer(t)
	inc.gate.event() // one request at a time here: the gate stays open
	inc.gate.event()
	body := `{"title":"Helpline down","severity":"major"}`
	inc.fail.Store(true)
	if code, b := do(t, srv, "POST", "/api/v1/incidents", operatorToken, body, "Idempotency-Key", "k-5xx"); code != 500 {
		t.Fatalf("failing handler: %d %s, want 500", code, b)
	}
	inc.fail.Store(false)
	if code, b := do(t, srv, "POST", "/api/v1/incidents", operatorToken, body, "Idempotency-Key", "k-5xx"); code != 201 {
		t.Fatalf("retry after a 500: %d %s, want 201 (the key must be free again)", code, b)
	}
	if n := inc.calls.Load(); n != 2 {
		t.Errorf("OpenIncident ran %d times, want 2", n)
	}
	list, _ := st.Incidents(context.Background(), false)
	if len(list) != 1 {
		t.Errorf("%d incidents, want 1", len(list))
	}
}
