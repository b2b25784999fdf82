package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crier-dev/crier/store"
)

// logPage is how many deliveries one page of the log shows.
const logPage = 100

// statuses lists every delivery status, for the filter.
func statuses() []string {
	return []string{store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusDelivered, store.StatusFailed,
		store.StatusExpired, store.StatusSuppressed, store.StatusUnknown}
}

// logQuery is the log's filter as the form and links carry it.
type logQuery struct {
	Incident, Subscriber, Channel, Status, Kind, Trigger, Since string
}

func readLogQuery(q url.Values) logQuery {
	return logQuery{Incident: strings.TrimSpace(q.Get("incident")), Subscriber: strings.TrimSpace(q.Get("subscriber")), Channel: q.Get("channel"),
		Status: q.Get("status"), Kind: q.Get("kind"), Trigger: strings.TrimSpace(q.Get("trigger")), Since: q.Get("since")}
}

// values is the query as URL parameters, empty ones left out.
func (lq logQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"incident": lq.Incident, "subscriber": lq.Subscriber, "channel": lq.Channel, "status": lq.Status,
		"kind": lq.Kind, "trigger": lq.Trigger, "since": lq.Since} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// filter turns the query into a store filter; problems name the form
// field.
func (lq logQuery) filter(now time.Time) (store.LogFilter, fieldErrors) {
	var fe fieldErrors
	f := store.LogFilter{IncidentID: lq.Incident, Subscriber: lq.Subscriber, Channel: lq.Channel, Kind: lq.Kind}
	if lq.Status != "" {
		if !slices.Contains(statuses(), lq.Status) {
			fe.add("status", fmt.Sprintf("%q is not a delivery status: choose one from the list", lq.Status))
		}
		f.Status = lq.Status
	}
	if lq.Trigger != "" {
		id, err := strconv.ParseInt(lq.Trigger, 10, 64)
		if err != nil || id <= 0 {
			fe.add("trigger", fmt.Sprintf("%q is not a broadcast number (the broadcasts page lists them)", lq.Trigger))
		}
		f.TriggerIDs = []int64{id}
	}
	if lq.Since != "" {
		d, err := time.ParseDuration(lq.Since)
		if err != nil || d <= 0 {
			fe.add("since", fmt.Sprintf("%q is not a time window: choose one from the list", lq.Since))
		}
		f.Since = now.Add(-d)
	}
	return f, fe
}

type logData struct {
	Q        logQuery
	Errors   fieldErrors
	Rows     []*store.LogEntry
	Next     string
	First    string
	CSV      string
	JSON     string
	Channels []ChannelChoice
	Statuses []string
	Kinds    []string
	Since    []string
}

func (d *Dashboard) log(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := readLogQuery(q)
	data := logData{Q: lq, Channels: d.o.App.Choices().Channels, Statuses: statuses(), Kinds: []string{"sms", "email", "slack"},
		Since: []string{"1h", "6h", "24h", "168h"}}
	f, fe := lq.filter(d.o.Now())
	data.Errors = fe
	if fe.Any() {
		d.render(w, r, http.StatusBadRequest, "log", "Delivery log", data)
		return
	}
	if v := q.Get("after"); v != "" {
		f.AfterID, _ = strconv.ParseInt(v, 10, 64)
		data.First = "/log?" + lq.values().Encode()
	}
	f.Limit, f.WithBody, f.RedactAckLinks = logPage, true, true
	err := d.o.Read.Log(r.Context(), f, func(e *store.LogEntry) error {
		data.Rows = append(data.Rows, e)
		return nil
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if len(data.Rows) == logPage {
		v := lq.values()
		v.Set("after", strconv.FormatInt(data.Rows[len(data.Rows)-1].ID, 10))
		data.Next = "/log?" + v.Encode()
	}
	for _, format := range []string{"csv", "json"} {
		v := lq.values()
		v.Set("format", format)
		if format == "csv" {
			data.CSV = "/log/export?" + v.Encode()
		} else {
			data.JSON = "/log/export?" + v.Encode()
		}
	}
	d.render(w, r, http.StatusOK, "log", "Delivery log", data)
}

// export streams every delivery the filter selects, with bodies when
// asked (bodies=1), as a CSV or JSON-lines download.
func (d *Dashboard) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, fe := readLogQuery(q).filter(d.o.Now())
	if fe.Any() {
		d.badRequest(w, r, fe.Summary[0].Label+": "+fe.Summary[0].Msg)
		return
	}
	format := q.Get("format")
	var ctype string
	switch format {
	case "csv":
		ctype = "text/csv; charset=utf-8"
	case "json":
		ctype = "application/x-ndjson"
	default:
		d.badRequest(w, r, "format must be csv or json.")
		return
	}
	f.WithBody, f.RedactAckLinks = q.Get("bodies") != "", true
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="crier-deliveries-%s.%s"`, d.o.Now().UTC().Format("20060102-1504"), format))
	if err := d.o.App.ExportLog(r.Context(), f, w, format); err != nil && r.Context().Err() == nil {
		// the download has started: all that is left is to log it
		d.o.Log.Error("dashboard: export", "err", err)
	}
}

type deliveryData struct {
	E      *store.LogEntry
	Events []store.Event
	Acked  *store.Event
}

// delivery shows one delivery: the exact message, where it went and
// every status change.
func (d *Dashboard) delivery(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		d.fail(w, r, fmt.Errorf("delivery %q: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	var e *store.LogEntry
	err = d.o.Read.Log(r.Context(), store.LogFilter{AfterID: id - 1, Limit: 1, WithBody: true, RedactAckLinks: true}, func(le *store.LogEntry) error {
		if le.ID == id {
			e = le
		}
		return nil
	})
	if err == nil && e == nil {
		err = fmt.Errorf("delivery %d: %w (the delivery log lists them)", id, store.ErrNotFound)
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	evs, err := d.o.Read.Events(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := deliveryData{E: e, Events: evs}
	for i := range evs {
		if evs[i].Status == "acknowledged" {
			data.Acked = &evs[i]
			break
		}
	}
	d.render(w, r, http.StatusOK, "delivery", fmt.Sprintf("Delivery %d to %s", id, e.Subscriber), data)
}

// recipientKeep is how many of one person's latest messages their page
// shows.
const recipientKeep = 50

type recipientData struct {
	ID     string
	Rows   []*store.LogEntry // newest first
	More   bool
	LogURL string
}

// recipient is one person's messages, newest first, each exactly as it
// went out on its channel: the sandbox channels are browsable here like a
// mail catcher.
func (d *Dashboard) recipient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var rows []*store.LogEntry
	more := false
	err := d.o.Read.Log(r.Context(), store.LogFilter{Subscriber: id, WithBody: true, RedactAckLinks: true}, func(e *store.LogEntry) error {
		rows = append(rows, e)
		if len(rows) > recipientKeep {
			rows, more = rows[1:], true
		}
		return nil
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	slices.Reverse(rows)
	d.render(w, r, http.StatusOK, "recipient", "Messages to "+id, recipientData{ID: id, Rows: rows, More: more,
		LogURL: "/log?" + url.Values{"subscriber": {id}}.Encode()})
}
