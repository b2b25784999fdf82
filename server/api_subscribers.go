package server

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/crier-dev/crier/subscribers"
)

func (s *Server) listSubscribers(w http.ResponseWriter, r *http.Request) {
	list, err := s.o.Subscribers.Subscribers(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []subscribers.Subscriber{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscribers": list})
}

// createSubscriber adds one subscriber; its id must be new.
func (s *Server) createSubscriber(w http.ResponseWriter, r *http.Request) {
	var sub subscribers.Subscriber
	if !s.decode(w, r, &sub) {
		return
	}
	s.saveOne(w, r, sub, SaveCreate, http.StatusCreated)
}

// updateSubscriber replaces one existing subscriber (every field: what
// the body leaves out is cleared or defaulted, as in the config file).
func (s *Server) updateSubscriber(w http.ResponseWriter, r *http.Request) {
	var sub subscribers.Subscriber
	if !s.decode(w, r, &sub) {
		return
	}
	id := r.PathValue("id")
	if sub.ID == "" {
		sub.ID = id
	}
	if sub.ID != id {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "id", fmt.Sprintf("the body's id %q is not the id in the URL (%q): ids cannot be changed; leave id out of the body", sub.ID, id))
		return
	}
	s.saveOne(w, r, sub, SaveUpdate, http.StatusOK)
}

func (s *Server) saveOne(w http.ResponseWriter, r *http.Request, sub subscribers.Subscriber, mode SaveMode, status int) {
	if errs := sub.Normalize(); len(errs) > 0 {
		s.fail(w, errs.Err())
		return
	}
	_, err := s.o.Subscribers.SaveSubscribers(r.Context(), []subscribers.Subscriber{sub}, mode)
	var c SubscriberConflicts
	if errors.As(err, &c) && len(c) > 0 {
		code, st := c[0].Code, http.StatusConflict
		if code == "not_found" {
			st = http.StatusNotFound
		}
		writeError(w, st, code, "id", c[0].Msg)
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, status, sub)
}

// rowProblem is one bad CSV row or cell in an import answer.
type rowProblem struct {
	Line    int    `json:"line"`
	Column  string `json:"column,omitempty"`
	Value   string `json:"value,omitempty"`
	Message string `json:"message"`
}

// importError is the error body of a refused import: every problem with
// its line and column.
type importError struct {
	apiError
	Rows []rowProblem `json:"rows"`
}

// importSubscribers reads a CSV body (the columns of `crier subscribers
// import`) and saves it all, or nothing if any row is bad, unless
// skip_invalid=true, which saves the good rows and lists the rest.
func (s *Server) importSubscribers(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "text/csv" && mt != "application/csv") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "send the CSV with Content-Type: text/csv")
		return
	}
	skip := false
	switch v := r.URL.Query().Get("skip_invalid"); v {
	case "", "false":
	case "true":
		skip = true
	default:
		writeError(w, http.StatusBadRequest, "invalid", "skip_invalid", fmt.Sprintf("skip_invalid %q must be true or false", v))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("request body over %d bytes: split the file", s.o.MaxBody))
		return
	}
	res, err := subscribers.ReadCSV(bytes.NewReader(body))
	var re *subscribers.RowError
	if errors.As(err, &re) {
		writeImportError(w, fmt.Sprintf("the header is not usable: %s", re.Msg), []subscribers.RowError{*re})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_csv", "", "the body is not readable CSV: "+err.Error())
		return
	}
	bad := res.Errors
	if len(bad) > 0 && !skip {
		writeImportError(w, fmt.Sprintf("%d problem(s); nothing was imported (fix them, or add ?skip_invalid=true to import the %d good rows)", len(bad), len(res.Subscribers)), bad)
		return
	}
	good := res.Subscribers
	saved, err := s.o.Subscribers.SaveSubscribers(r.Context(), good, SaveUpsert)
	var c SubscriberConflicts
	if errors.As(err, &c) && len(c) > 0 {
		lines := idLines(body)
		drop := map[int]bool{}
		for _, x := range c {
			drop[x.Index] = true
			bad = append(bad, subscribers.RowError{Line: lines[x.ID], Column: "id", Value: x.ID, Msg: x.Msg})
		}
		if !skip {
			writeImportError(w, fmt.Sprintf("%d problem(s); nothing was imported", len(bad)), bad)
			return
		}
		kept := good[:0:0]
		for i := range good {
			if !drop[i] {
				kept = append(kept, good[i])
			}
		}
		good = kept
		saved, err = s.o.Subscribers.SaveSubscribers(r.Context(), good, SaveUpsert)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"imported": len(good), "created": saved.Created, "updated": saved.Updated, "skipped": problems(bad)})
}

func writeImportError(w http.ResponseWriter, msg string, rows []subscribers.RowError) {
	e := importError{apiError: apiError{Code: "invalid_csv", Message: msg}, Rows: problems(rows)}
	if len(rows) > 0 {
		e.Field = fmt.Sprintf("line %d", rows[0].Line)
		if rows[0].Column != "" {
			e.Field += ", column " + rows[0].Column
		}
		e.Message = rows[0].Error() + " (" + msg + ")"
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]importError{"error": e})
}

func problems(rows []subscribers.RowError) []rowProblem {
	out := make([]rowProblem, len(rows))
	for i, r := range rows {
		out[i] = rowProblem{Line: r.Line, Column: r.Column, Value: r.Value, Message: r.Msg}
	}
	return out
}

// idLines maps each id in a CSV body to its line, for problems found
// after parsing (ReadCSV does not keep lines of good rows).
func idLines(body []byte) map[string]int {
	out := map[string]int{}
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF"))))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return out
	}
	col := -1
	for i, h := range header {
		if strings.EqualFold(strings.TrimSpace(h), "id") {
			col = i
		}
	}
	for col >= 0 {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil || col >= len(rec) {
			continue
		}
		line, _ := cr.FieldPos(col)
		id := strings.ToLower(strings.TrimSpace(rec[col]))
		if _, seen := out[id]; !seen {
			out[id] = line
		}
	}
	return out
}
