package server

import (
	"fmt"
	"net/http"
	"strconv"
)

// listSchedules answers GET /api/v1/schedules: every briefing with its
// next fire times (n of them, default 5) in its own zone and how its
// latest occurrence went.
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	n := 5
	if v := r.URL.Query().Get("n"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > 100 {
			writeError(w, http.StatusBadRequest, "invalid", "n", "n must be a number from 1 to 100")
			return
		}
		n = k
	}
	list, err := s.o.Schedules.Schedules(r.Context(), n)
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []Schedule{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": list})
}

// fireSchedule plans the named briefing now, like `crier brief NAME`: 201
// with its trigger, or 200 when it was already fired this minute (it is
// never sent twice).
func (s *Server) fireSchedule(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > 0 {
		var empty struct{}
		if !s.decode(w, r, &empty) {
			return
		}
	}
	name := r.PathValue("name")
	out, err := s.o.Schedules.FireBriefing(r.Context(), name)
	if err != nil {
		s.failAPI(w, err, "name")
		return
	}
	status := http.StatusOK
	if out.Created {
		s.o.Notify()
		status = http.StatusCreated
	}
	if out.ByChannel == nil {
		out.ByChannel = map[string]int{}
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/broadcasts/%s", out.Key))
	writeJSON(w, status, out)
}
