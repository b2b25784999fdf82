package server

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/subscribers"
)

// The round trips that validate real answers against the document run in
// cmd/crier (TestAPI_RoundTrips_MatchOpenAPI) against a running crier
// serve; here the document itself is checked, and against Routes.

// stubApp implements every interface an optional feature of Options
// takes, so that a server can be built with all of them on. Only route
// registration is tested with it: its methods are never meant to run.
type stubApp struct{ http.Handler }

var errStub = errors.New("stub: not for serving")

func (stubApp) OpenIncident(context.Context, incidents.Change) (dispatch.IncidentResult, error) {
	return dispatch.IncidentResult{}, errStub
}
func (stubApp) ChangeIncident(context.Context, string, string, incidents.Change) (dispatch.IncidentResult, error) {
	return dispatch.IncidentResult{}, errStub
}
func (stubApp) Preflight(context.Context, PreflightRequest) (dispatch.Preflight, error) {
	return dispatch.Preflight{}, errStub
}
func (stubApp) Broadcast(context.Context, BroadcastRequest) (BroadcastResult, error) {
	return BroadcastResult{}, errStub
}
func (stubApp) Progress(context.Context, string) (Progress, error) { return Progress{}, errStub }
func (stubApp) Subscribers(context.Context) ([]subscribers.Subscriber, error) {
	return nil, errStub
}
func (stubApp) SaveSubscribers(context.Context, []subscribers.Subscriber, SaveMode) (SaveResult, error) {
	return SaveResult{}, errStub
}
func (stubApp) Schedules(context.Context, int) ([]Schedule, error) { return nil, errStub }
func (stubApp) FireBriefing(context.Context, string) (dispatch.Outcome, error) {
	return dispatch.Outcome{}, errStub
}

// allFeatures builds a server with every optional feature of Options on:
// interfaces get the stub (a test failure names any interface it does not
// implement yet, so a new feature cannot slip past the route check),
// option structs a zero value, functions a no-op.
func allFeatures(t *testing.T) *Server {
	t.Helper()
	_, st := newServer(t)
	o := Options{Store: st, Incidents: storeIncidents{st}, Twilio: &TwilioOptions{AuthToken: "stub-auth-token", PublicURL: "https://crier.example.org", Store: st}}
	stub := reflect.ValueOf(stubApp{Handler: http.NotFoundHandler()})
	v := reflect.ValueOf(&o).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if !f.IsZero() {
			continue
		}
		switch f.Kind() {
		case reflect.Interface:
			if !stub.Type().Implements(f.Type()) {
				t.Fatalf("Options.%s: stubApp does not implement %s: add its methods so the route check sees that feature", name, f.Type())
			}
			f.Set(stub)
		case reflect.Pointer:
			if f.Type().Elem().Kind() == reflect.Struct {
				f.Set(reflect.New(f.Type().Elem()))
			}
		case reflect.Func:
			f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value {
				out := make([]reflect.Value, f.Type().NumOut())
				for k := range out {
					out[k] = reflect.Zero(f.Type().Out(k))
				}
				return out
			}))
		}
	}
	return New(o)
}

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// documented reports whether a route pattern belongs in the document:
// the JSON API and the health checks.
func documented(pattern string) bool {
	return strings.HasPrefix(pattern, "/api/") || pattern == "/healthz" || pattern == "/readyz"
}

// TestOpenAPI_Document_MatchesRoutes checks both ways that the document and
// a server with every feature on agree: each /api/ and health route is
// documented with its method and its role (x-crier-role), and each
// documented operation is a registered route.
func TestOpenAPI_Document_MatchesRoutes(t *testing.T) {
	doc := loadDoc(t)
	s := allFeatures(t)
	registered := map[string]string{} // "METHOD pattern" → role
	for _, r := range s.Routes() {
		if !documented(r.Pattern) {
			continue
		}
		key := r.Method + " " + r.Pattern
		registered[key] = r.Role
		item := doc.Paths.Value(r.Pattern)
		if item == nil {
			t.Errorf("route %s (role %q) is not in openapi.json", key, r.Role)
			continue
		}
		op := item.GetOperation(r.Method)
		if op == nil {
			t.Errorf("route %s: openapi.json has the path but not the method", key)
			continue
		}
		if got, _ := op.Extensions["x-crier-role"].(string); got != r.Role {
			t.Errorf("route %s needs role %q, openapi.json says x-crier-role %q", key, r.Role, got)
		}
		if public := op.Security != nil && len(*op.Security) == 0; public != (r.Role == "") {
			t.Errorf("route %s: role %q but the document's security says public=%v", key, r.Role, public)
		}
		if r.Method == "POST" && r.Role != "" && !hasParam(op, "header", "Idempotency-Key") {
			t.Errorf("route %s does not document the Idempotency-Key header", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := registered[method+" "+path]; !ok {
				t.Errorf("openapi.json documents %s %s, which the server does not register", method, path)
			}
		}
	}
	if len(registered) < 20 {
		t.Errorf("only %d documented routes registered; is every feature on?", len(registered))
	}
}

func hasParam(op *openapi3.Operation, in, name string) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == in && p.Value.Name == name {
			return true
		}
	}
	return false
}

// TestOpenAPI_Document_ErrorsShareOneSchema checks that every documented
// error status of every operation answers with the Error schema, and that
// each operation documents 401/403 exactly when it needs a role.
func TestOpenAPI_Document_ErrorsShareOneSchema(t *testing.T) {
	doc := loadDoc(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			role, _ := op.Extensions["x-crier-role"].(string)
			for code, resp := range op.Responses.Map() {
				if code < "400" || path == "/readyz" {
					continue
				}
				mt := resp.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
					t.Errorf("%s %s %s: error answer is not the Error schema", method, path, code)
				}
			}
			for _, code := range []string{"401", "403"} {
				if has := op.Responses.Value(code) != nil; has != (role != "") {
					t.Errorf("%s %s: role %q but documents %s=%v", method, path, role, code, has)
				}
			}
		}
	}
}

// TestOpenAPI_Serve_Public serves the embedded document without a token.
func TestOpenAPI_Serve_Public(t *testing.T) {
	srv, _ := newServer(t)
	code, body := do(t, srv, "GET", "/api/v1/openapi.json", "", "")
	if code != 200 || !strings.Contains(body, `"openapi": "3.0.3"`) {
		t.Fatalf("GET /api/v1/openapi.json: %d %.80s", code, body)
	}
	if !slices.Equal([]byte(body), OpenAPI()) {
		t.Errorf("served document differs from the embedded one")
	}
}
