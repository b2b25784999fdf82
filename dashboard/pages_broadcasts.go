package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"time"

	"github.com/crier-dev/crier/store"
)

// recentTriggers lists the latest triggers with their progress.
func (d *Dashboard) recentTriggers(r *http.Request, n int) ([]triggerRow, error) {
	ts, err := d.o.Read.RecentTriggers(r.Context(), n)
	if err != nil {
		return nil, err
	}
	out := make([]triggerRow, 0, len(ts))
	for _, t := range ts {
		p, err := d.progressOf(r.Context(), store.TallyFilter{TriggerID: t.ID})
		if err != nil {
			return nil, err
		}
		out = append(out, triggerRow{T: t, P: p})
	}
	return out, nil
}

func (d *Dashboard) broadcasts(w http.ResponseWriter, r *http.Request) {
	rows, err := d.recentTriggers(r, 50)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "broadcasts", "Broadcasts and briefings", rows)
}

// trigger reads the trigger named by the {id} path segment.
func (d *Dashboard) trigger(w http.ResponseWriter, r *http.Request) (store.Trigger, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		d.fail(w, r, fmt.Errorf("broadcast %q: %w (the broadcasts page lists them)", r.PathValue("id"), store.ErrNotFound))
		return store.Trigger{}, false
	}
	t, err := d.o.Read.Trigger(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return t, false
	}
	return t, true
}

type broadcastData struct {
	T         store.Trigger
	P         progress
	LogURL    string
	EventsURL string
}

func (d *Dashboard) broadcast(w http.ResponseWriter, r *http.Request) {
	t, ok := d.trigger(w, r)
	if !ok {
		return
	}
	p, err := d.progressOf(r.Context(), store.TallyFilter{TriggerID: t.ID})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "broadcast", "Progress: "+triggerTitle(t), broadcastData{T: t, P: p,
		LogURL:    "/log?" + url.Values{"trigger": {strconv.FormatInt(t.ID, 10)}}.Encode(),
		EventsURL: fmt.Sprintf("/broadcasts/%d/events", t.ID)})
}

// triggerTitle names a trigger for people.
func triggerTitle(t store.Trigger) string {
	switch t.Kind {
	case "briefing":
		return "briefing " + t.Name
	case "incident":
		return t.IncidentID + " " + t.Name + " alert"
	}
	if t.Name != "" {
		return "broadcast “" + t.Name + "”"
	}
	return "broadcast " + strconv.FormatInt(t.ID, 10)
}

// broadcastEvents streams a trigger's progress as server-sent events: a
// "progress" event whenever the counts change, then "done" once nothing
// is queued or being sent. A stream lasts at most MaxStream; the browser's
// EventSource reconnects by itself after that.
func (d *Dashboard) broadcastEvents(w http.ResponseWriter, r *http.Request) {
	t, ok := d.trigger(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a buffering proxy would hold every event back
	w.WriteHeader(http.StatusOK)

	ctx := r.Context()
	tick := time.NewTicker(d.o.Poll)
	defer tick.Stop()
	end := time.NewTimer(d.o.MaxStream)
	defer end.Stop()
	var last progress
	sentAny := false
	lastWrite := time.Now()
	for {
		p, err := d.progressOf(ctx, store.TallyFilter{TriggerID: t.ID})
		if err != nil {
			if ctx.Err() == nil {
				d.o.Log.Error("dashboard: progress stream", "trigger", t.ID, "err", err)
			}
			return
		}
		if !sentAny || !reflect.DeepEqual(p, last) {
			b, _ := json.Marshal(p)
			if !d.event(rc, w, "progress", b) {
				return
			}
			last, sentAny, lastWrite = p, true, time.Now()
		}
		if p.Done {
			d.event(rc, w, "done", []byte("{}"))
			return
		}
		if time.Since(lastWrite) > 15*time.Second {
			// a comment keeps idle proxies from closing the stream
			if !d.event(rc, w, "", nil) {
				return
			}
			lastWrite = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.done:
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}

// event writes one server-sent event (a comment when name is "") and
// flushes it; it reports false once the browser is gone.
func (d *Dashboard) event(rc *http.ResponseController, w http.ResponseWriter, name string, data []byte) bool {
	// the server's write timeout is for ordinary pages; a stream
	// extends it one event at a time.
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	var err error
	if name == "" {
		_, err = fmt.Fprint(w, ": keep-alive\n\n")
	} else {
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	}
	if err == nil {
		err = rc.Flush()
	}
	return err == nil
}
