// Package server is crier's HTTP side: /healthz and /readyz, and the JSON
// API under /api/v1 behind bearer tokens. It declares the small interfaces
// it needs and knows no concrete channel, store query or template.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// Incidents is what the API needs to change incidents (and plan their alerts).
type Incidents interface {
	OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error)
	ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (dispatch.IncidentResult, error)
}

// Store is what the API reads.
type Store interface {
	Incidents(ctx context.Context, activeOnly bool) ([]*incidents.Incident, error)
	Incident(ctx context.Context, id string) (*incidents.Incident, error)
	Log(ctx context.Context, f store.LogFilter, fn func(*store.LogEntry) error) error
	ClaimAPIRequest(ctx context.Context, key, route, hash string, stale time.Duration) (store.APIResponse, bool, error)
	FinishAPIRequest(ctx context.Context, key string, status int, body []byte) error
	ReleaseAPIRequest(ctx context.Context, key string) error
	Ping(ctx context.Context) error
}

// Token is one API bearer token with its role.
type Token struct {
	Name  string
	Role  string // viewer, operator, admin
	Value fields.Secret
}

// Options configure the server.
type Options struct {
	Incidents Incidents
	Store     Store
	Tokens    []Token
	// Ready reports whether the scheduler and dispatcher are running.
	Ready func() error
	// ReadyDetail, if set, adds lines to a ready answer (which node runs
	// the scheduler).
	ReadyDetail func() string
	// Notify wakes the dispatcher after a change planned deliveries.
	Notify func()
	Log    *slog.Logger
	// MaxBody caps request bodies (default 1 MiB).
	MaxBody int64
	// Preflight, if set, serves POST /api/v1/preflight.
	Preflight Preflighter
	// Twilio serves Twilio's status callbacks and inbound SMS; nil: not served.
	Twilio *TwilioOptions
	// Acks serves acknowledgement links (/ack/{token}) and Slack's
	// interaction webhook; nil: not served.
	Acks *AckOptions
	// WebhookObserved, if set, hears the outcome of every webhook request
	// by route (metrics).
	WebhookObserved func(route, outcome string)
	// Metrics, if set, is served at GET /metrics (see registerMetrics).
	Metrics http.Handler
	// Broadcasts, if set, serves POST /api/v1/broadcasts and
	// GET /api/v1/broadcasts/{trigger} (see registerAPI).
	Broadcasts Broadcaster
	// Subscribers, if set, serves /api/v1/subscribers: list, create,
	// update and CSV import.
	Subscribers SubscriberAdmin
	// Schedules, if set, serves GET /api/v1/schedules and
	// POST /api/v1/schedules/{name}/fire.
	Schedules ScheduleRunner
	// Auth, if set, accepts database tokens besides Tokens and serves the
	// dashboard's sign-in (users, sessions, CSRF; see auth.go).
	Auth *AuthOptions
	// Dashboard lists the web dashboard's pages (package dashboard), each
	// registered behind sign-in with its role; nil: no dashboard.
	Dashboard []Page
}

// Server is the HTTP handler.
type Server struct {
	o      Options
	mux    *http.ServeMux
	routes []Route
}

// Route is one registered route and the role it needs ("" = no sign-in:
// health checks, and webhooks that carry their own signature).
type Route struct {
	Method, Pattern, Role string
}

// Routes lists every route the server registered, in order: the
// OpenAPI document and the role-matrix test are checked against it.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// route registers h for "METHOD /pattern", behind sign-in with at least
// role (none when role is "").
func (s *Server) route(method, pattern, role string, h http.HandlerFunc) {
	s.routes = append(s.routes, Route{Method: method, Pattern: pattern, Role: role})
	var handler http.Handler = h
	if role != "" {
		handler = s.auth(role, h)
	}
	s.mux.Handle(method+" "+pattern, handler)
}

// New builds the handler.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBody == 0 {
		o.MaxBody = 1 << 20
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	o.Auth = authDefaults(o.Auth)
	s := &Server{o: o, mux: http.NewServeMux()}
	s.route("GET", "/healthz", "", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	s.route("GET", "/readyz", "", s.readyz)
	s.route("GET", "/api/v1/incidents", "viewer", s.listIncidents)
	s.route("POST", "/api/v1/incidents", "operator", s.idempotent(s.openIncident))
	s.route("GET", "/api/v1/incidents/{id}", "viewer", s.getIncident)
	s.route("POST", "/api/v1/incidents/{id}/updates", "operator", s.idempotent(s.changeIncident("update")))
	s.route("POST", "/api/v1/incidents/{id}/resolve", "operator", s.idempotent(s.changeIncident("resolve")))
	s.route("GET", "/api/v1/deliveries", "viewer", s.listDeliveries)
	s.registerAuth()
	s.registerPreflight()
	s.registerTwilio()
	s.registerAcks()
	s.registerMetrics()
	s.registerAPI()
	s.registerDashboard()
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "", fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.o.Store.Ping(ctx); err != nil {
		http.Error(w, "database not writable", http.StatusServiceUnavailable)
		return
	}
	if s.o.Ready != nil {
		if err := s.o.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	body := "ready\n"
	if s.o.ReadyDetail != nil {
		body += s.o.ReadyDetail()
	}
	w.Write([]byte(body))
}

type apiError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Field   string          `json:"field,omitempty"`
	Details []*fields.Error `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg, Field: field}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail maps an error to a JSON answer: field problems are 422 with every
// problem listed, a missing incident 404, anything else 500 (logged, not
// echoed).
func (s *Server) fail(w http.ResponseWriter, err error) {
	if l, ok := fields.AsList(err); ok {
		e := apiError{Code: "invalid", Message: l[0].Error(), Field: l[0].Path, Details: l}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]apiError{"error": e})
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "", err.Error())
		return
	}
	s.o.Log.Error("api request failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "", "internal error; see the server log")
}

// decode reads a JSON body strictly: size-limited, unknown fields rejected.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "send Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("request body over %d bytes", s.o.MaxBody))
		case errors.As(err, &ute):
			writeError(w, http.StatusBadRequest, "bad_json", ute.Field, fmt.Sprintf("field %s must be a %s", ute.Field, ute.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			writeError(w, http.StatusBadRequest, "unknown_field", f, fmt.Sprintf("unknown field %q", f))
		default:
			writeError(w, http.StatusBadRequest, "bad_json", "", "request body is not valid JSON: "+err.Error())
		}
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_json", "", "request body has more than one JSON value")
		return false
	}
	return true
}

// recorder captures a handler's answer for Idempotency-Key replay.
type recorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	r.body = append(r.body, b...)
	return r.ResponseWriter.Write(b)
}

// idempotentStale is how long an unanswered Idempotency-Key claim holds
// before a retry may take it over: far longer than any request takes, so
// only a claim whose process died mid-request is ever taken.
const idempotentStale = 10 * time.Minute

// idempotent replays the first answer to a POST with the same
// Idempotency-Key and body, and refuses the key with a different body.
// The key is claimed before the handler runs: a concurrent request with
// the same key is told to retry later instead of acting a second time.
func (s *Server) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			h(w, r)
			return
		}
		if len(key) > 200 {
			writeError(w, http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key", "Idempotency-Key is longer than 200 characters")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("request body over %d bytes", s.o.MaxBody))
			return
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		route := r.Method + " " + r.URL.Path
		prev, claimed, err := s.o.Store.ClaimAPIRequest(r.Context(), key, route, hash, idempotentStale)
		if err != nil {
			s.fail(w, err)
			return
		}
		if !claimed {
			switch {
			case prev.Route != route || prev.BodyHash != hash:
				writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key", "this Idempotency-Key was used for a different request")
			case prev.InProgress():
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusConflict, "idempotency_key_in_progress", "Idempotency-Key", "a request with this Idempotency-Key is still being processed; retry later")
			default:
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(prev.Status)
				w.Write(prev.Body)
			}
			return
		}
		// The answer is stored even if the client has gone away; a 5xx (or
		// a panic) gives the key back so that a retry can act.
		ctx := context.WithoutCancel(r.Context())
		finished := false
		defer func() {
			if finished {
				return
			}
			if err := s.o.Store.ReleaseAPIRequest(ctx, key); err != nil {
				s.o.Log.Error("release idempotency key", "err", err)
			}
		}()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		if rec.status < 500 {
			finished = true
			if err := s.o.Store.FinishAPIRequest(ctx, key, rec.status, rec.body); err != nil {
				s.o.Log.Error("save idempotency key", "err", err)
			}
		}
	}
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) {
	list, err := s.o.Store.Incidents(r.Context(), r.URL.Query().Get("all") == "")
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []*incidents.Incident{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": list})
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	inc, err := s.o.Store.Incident(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func (s *Server) openIncident(w http.ResponseWriter, r *http.Request) {
	var c incidents.Change
	if !s.decode(w, r, &c) {
		return
	}
	res, err := s.o.Incidents.OpenIncident(r.Context(), c)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.o.Notify()
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) changeIncident(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var c incidents.Change
		if !s.decode(w, r, &c) {
			return
		}
		res, err := s.o.Incidents.ChangeIncident(r.Context(), r.PathValue("id"), kind, c)
		if err != nil {
			s.fail(w, err)
			return
		}
		s.o.Notify()
		writeJSON(w, http.StatusOK, res)
	}
}
