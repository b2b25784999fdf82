package server

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/crier-dev/crier/store"
)

// DeliveryColumns are the delivery export's CSV columns, the same as
// `crier log --csv` prints (a test holds the two together).
var DeliveryColumns = store.LogColumns

// BodyColumns are appended to DeliveryColumns when the export includes
// message bodies (body=true, like `crier log --csv --show-body`).
var BodyColumns = store.LogBodyColumns

// deliveryStatuses are the values the status filter accepts.
var deliveryStatuses = []string{store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusDelivered, store.StatusFailed,
	store.StatusExpired, store.StatusSuppressed, store.StatusUnknown}

// logQuery is a parsed delivery filter: the store's filter plus the
// upper time bound, which the store does not take.
type logQuery struct {
	store.LogFilter
	until time.Time
}

// errStop ends a log walk early once a page is full.
var errStop = errors.New("stop")

// parseLogQuery reads the delivery filters shared by the list and the
// export. It answers a bad value itself (400, naming the parameter) and
// returns false.
func parseLogQuery(w http.ResponseWriter, r *http.Request, limit int) (logQuery, bool) {
	q := r.URL.Query()
	lq := logQuery{LogFilter: store.LogFilter{IncidentID: q.Get("incident"), Status: q.Get("status"), Channel: q.Get("channel"),
		Subscriber: q.Get("subscriber"), Kind: q.Get("kind"), Trigger: q.Get("trigger"), Limit: limit}}
	bad := func(field, msg string) (logQuery, bool) {
		writeError(w, http.StatusBadRequest, "invalid", field, msg)
		return lq, false
	}
	if v := lq.Status; v != "" && !contains(deliveryStatuses, v) {
		return bad("status", fmt.Sprintf("status %q is not a delivery status: queued, sending, sent, delivered, failed, expired, suppressed or unknown", v))
	}
	if v := lq.Kind; v != "" && v != "sms" && v != "email" && v != "slack" {
		return bad("kind", fmt.Sprintf("kind %q is not a channel kind: sms, email or slack", v))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return bad("limit", "limit must be a number from 1 to 5000")
		}
		lq.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return bad("after", "after must be a delivery id (the next_cursor of the previous page)")
		}
		lq.AfterID = n
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &lq.Since}, {"until", &lq.until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return bad(p.name, p.name+" must be an RFC 3339 time like 2026-11-25T08:00:00Z")
			}
			*p.to = t
		}
	}
	if !lq.until.IsZero() && !lq.Since.IsZero() && lq.until.Before(lq.Since) {
		return bad("until", "until is before since: give a window that ends after it starts")
	}
	return lq, true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// walk calls fn for each matching delivery in id order, at most Limit of
// them (0: all). The limit is applied here, after the until bound, so a
// page is always full when more rows match.
func (s *Server) walk(r *http.Request, lq logQuery, fn func(*store.LogEntry) error) error {
	f, limit, n := lq.LogFilter, lq.Limit, 0
	if !lq.until.IsZero() {
		f.Limit = 0
	}
	err := s.o.Store.Log(r.Context(), f, func(e *store.LogEntry) error {
		if !lq.until.IsZero() && e.CreatedAt.After(lq.until) {
			return nil
		}
		if err := fn(e); err != nil {
			return err
		}
		if n++; limit > 0 && n >= limit {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// listDeliveries serves one page of the delivery log; next_cursor, when
// present, is the after of the next page.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	lq, ok := parseLogQuery(w, r, 500)
	if !ok {
		return
	}
	list := []*store.LogEntry{}
	if err := s.walk(r, lq, func(e *store.LogEntry) error { list = append(list, e); return nil }); err != nil {
		s.fail(w, err)
		return
	}
	resp := map[string]any{"deliveries": list}
	if len(list) == lq.Limit {
		resp["next_cursor"] = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

// exportDeliveries streams every matching delivery as CSV (the columns of
// `crier log --csv`) or as a JSON array (the objects of `crier log
// --json`), row by row: an export of the whole log holds one row in
// memory at a time.
func (s *Server) exportDeliveries(w http.ResponseWriter, r *http.Request) {
	lq, ok := parseLogQuery(w, r, 0)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		writeError(w, http.StatusBadRequest, "invalid", "format", fmt.Sprintf("format %q must be csv or json", format))
		return
	}
	switch v := r.URL.Query().Get("body"); v {
	case "", "false":
	case "true":
		lq.WithBody, lq.RedactAckLinks = true, true
	default:
		writeError(w, http.StatusBadRequest, "invalid", "body", fmt.Sprintf("body %q must be true or false", v))
		return
	}
	// A long export outlives the server's write timeout, which is there
	// for stalled clients of ordinary requests.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	name := "crier-deliveries-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var err error
	if format == "csv" {
		err = s.exportCSV(w, r, lq)
	} else {
		err = s.exportJSON(w, r, lq)
	}
	if err != nil {
		// The status line has gone: cut the connection so the client sees
		// a broken transfer, not a short file that looks complete.
		s.o.Log.Error("delivery export failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request, lq logQuery) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cols := DeliveryColumns
	if lq.WithBody {
		cols = append(append([]string(nil), cols...), BodyColumns...)
	}
	if err := cw.Write(cols); err != nil {
		return err
	}
	err := s.walk(r, lq, func(e *store.LogEntry) error { return cw.Write(e.CSVRow(lq.WithBody)) })
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}

func (s *Server) exportJSON(w http.ResponseWriter, r *http.Request, lq logQuery) error {
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write([]byte("[")); err != nil {
		return err
	}
	sep := "\n"
	err := s.walk(r, lq, func(e *store.LogEntry) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := w.Write(append([]byte(sep), b...)); err != nil {
			return err
		}
		sep = ",\n"
		return nil
	})
	if err != nil {
		return err
	}
	_, err = w.Write([]byte("\n]\n"))
	return err
}
