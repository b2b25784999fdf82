package server

import (
	"net/http"
	"strings"
)

// createBroadcast pre-flights and (unless preflight_only) plans an ad-hoc
// broadcast: 201 when it planned a new trigger, 200 for a pre-flight only,
// a trigger key planned before, or a broadcast without a key identical to
// one planned within the repeat window (repeat_of): nothing is sent twice.
func (s *Server) createBroadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if !s.decode(w, r, &req) {
		return
	}
	res, err := s.o.Broadcasts.Broadcast(r.Context(), req)
	if err != nil {
		s.failAPI(w, err, "")
		return
	}
	status := http.StatusOK
	if res.Outcome != nil && res.Outcome.Created {
		s.o.Notify()
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/broadcasts/"+res.Outcome.Key)
	}
	writeJSON(w, status, res)
}

// broadcastProgress counts the deliveries of one trigger by status.
func (s *Server) broadcastProgress(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("trigger")
	if strings.TrimSpace(key) == "" || len(key) > 300 {
		writeError(w, http.StatusBadRequest, "invalid", "trigger", "give the trigger key a broadcast returned, like send:3f9c2a0b")
		return
	}
	p, err := s.o.Broadcasts.Progress(r.Context(), key)
	if err != nil {
		s.failAPI(w, err, "trigger")
		return
	}
	writeJSON(w, http.StatusOK, p)
}
