package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/crier-dev/crier/dispatch"
)

// PreflightRequest names what to pre-flight: a briefing, an incident
// event, or an ad-hoc broadcast (exactly one).
type PreflightRequest struct {
	Briefing string   `json:"briefing,omitempty"`
	Incident string   `json:"incident,omitempty"`
	Event    string   `json:"event,omitempty"` // open, update or resolve (with incident)
	Audience string   `json:"audience,omitempty"`
	Channels []string `json:"channels,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Body     string   `json:"body,omitempty"`
	Critical bool     `json:"critical,omitempty"`
}

// Preflighter renders what a trigger would send without sending it.
type Preflighter interface {
	Preflight(ctx context.Context, r PreflightRequest) (dispatch.Preflight, error)
}

// ErrBadRequest marks a pre-flight request that names nothing valid; its
// message says what to fix.
var ErrBadRequest = errors.New("bad request")

func (s *Server) registerPreflight() {
	if s.o.Preflight == nil {
		return
	}
	s.route("POST", "/api/v1/preflight", "operator", s.preflight)
}

func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	var req PreflightRequest
	if !s.decode(w, r, &req) {
		return
	}
	pf, err := s.o.Preflight.Preflight(r.Context(), req)
	if errors.Is(err, ErrBadRequest) {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "", err.Error())
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pf)
}
