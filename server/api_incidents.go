package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
)

// timelineEntry is one timeline update with what it sent: its trigger
// and its deliveries by status.
type timelineEntry struct {
	incidents.Update
	// Trigger is the update's trigger key (incident:ID:seq).
	Trigger string `json:"trigger"`
	// Deliveries counts the update's deliveries by status; empty when no
	// alert rule matched it.
	Deliveries map[string]int `json:"deliveries"`
}

// timeline answers GET /api/v1/incidents/{id}/timeline: every update,
// oldest first, with what each one sent.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	inc, err := s.o.Store.Incident(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	byKey := map[string]*timelineEntry{}
	out := make([]*timelineEntry, len(inc.Timeline))
	for i, u := range inc.Timeline {
		e := &timelineEntry{Update: u, Trigger: fmt.Sprintf("incident:%s:%d", inc.ID, u.Seq), Deliveries: map[string]int{}}
		if e.Impacts == nil {
			e.Impacts = []incidents.Impact{}
		}
		out[i] = e
		byKey[e.Trigger] = e
	}
	err = s.o.Store.Log(r.Context(), store.LogFilter{IncidentID: inc.ID}, func(d *store.LogEntry) error {
		if e := byKey[d.Trigger]; e != nil {
			e.Deliveries[d.Status]++
		}
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incident": inc.ID, "title": inc.Title, "status": inc.Status, "timeline": out,
		"opened_at": inc.OpenedAt, "resolved_at": optionalTime(inc.ResolvedAt)})
}

// optionalTime is nil for the zero time, so JSON says null, not year 1.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
