package subscribers

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvColumns are the columns ReadCSV understands, in documentation order.
// opted_out is accepted beyond the core set so that moving people from
// another system cannot silently drop their opt-outs.
var csvColumns = [...]string{
	"id", "name", "roles", "nations", "tags", "locale", "locale_recorded", "locale_source", "timezone",
	"phone", "email", "slack", "quiet_hours", "opted_out",
}

// csvRequired are the columns a header must have.
var csvRequired = [...]string{"id", "name"}

// RowError is one problem with one CSV row or cell. Line is 1-based and
// counts the header as line 1; Column is empty when the problem is the
// whole row.
type RowError struct {
	Line   int
	Column string
	Value  string
	Msg    string
}

// Error reads like `line 7, column phone: "0123": not a valid phone number: use …`.
func (e *RowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", e.Line)
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %s", e.Column)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ImportResult is what ReadCSV found: the rows that passed every check, in
// file order and normalised, and a problem for every one that did not.
// Whether to import the good rows when there are bad ones is the caller's
// decision.
type ImportResult struct {
	Subscribers []Subscriber
	Errors      []RowError
}

// ReadCSV reads subscribers from CSV with a header row. Columns may come in
// any order and any case; list cells (roles, nations, tags, opted_out) are
// split on ';'; quiet_hours is written "22:00-07:00". Every row is
// normalised and every problem reported with its line and column; an id
// seen on an earlier line is an error on the later one. A UTF-8 byte order
// mark is ignored, as are rows with no content. The error return is only
// for input that cannot be read and for a bad header (an unknown, repeated
// or missing column), which comes back as a *RowError for line 1.
func ReadCSV(r io.Reader) (ImportResult, error) {
	var res ImportResult
	cr := csv.NewReader(skipBOM(r))
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = 0 // the header sets the count; other rows are checked against it

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return res, &RowError{Line: 1, Msg: "no header row: the first line must name the columns, e.g. id,name,phone"}
	}
	if err != nil {
		return res, fmt.Errorf("read csv header: %w", err)
	}
	cols, err := parseHeader(header)
	if err != nil {
		return res, err
	}

	firstLine := map[string]int{} // id → line it first appeared on
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if err != nil && !errors.As(err, &pe) {
			return res, fmt.Errorf("read csv: %w", err)
		}
		if pe != nil {
			res.Errors = append(res.Errors, rowParseError(pe, len(header), len(rec)))
			continue
		}
		line, _ := cr.FieldPos(0)
		if blankRecord(rec) {
			continue
		}
		sub, rowErrs := subscriberFromRecord(rec, cols, line)
		if sub.ID != "" && !hasColumnError(rowErrs, "id") {
			if first, dup := firstLine[sub.ID]; dup {
				rowErrs = append(rowErrs, RowError{Line: line, Column: "id", Value: sub.ID,
					Msg: fmt.Sprintf("duplicate id, first used on line %d: give each person a different id", first)})
			} else {
				firstLine[sub.ID] = line
			}
		}
		if len(rowErrs) > 0 {
			res.Errors = append(res.Errors, rowErrs...)
			continue
		}
		res.Subscribers = append(res.Subscribers, sub)
	}
	return res, nil
}

// skipBOM drops a leading UTF-8 byte order mark, which spreadsheet
// programs write and which would otherwise glue itself to the first
// column's name.
func skipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	return br
}

// parseHeader maps each column index to its canonical column name.
func parseHeader(header []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range csvColumns {
		known[c] = true
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, raw := range header {
		name := headerKey(raw)
		switch {
		case name == "":
			return nil, &RowError{Line: 1, Column: fmt.Sprintf("%d", i+1),
				Msg: "empty column name: name every column, or delete the empty one"}
		case !known[name]:
			return nil, &RowError{Line: 1, Column: strings.TrimSpace(raw),
				Msg: "unknown column: use only " + strings.Join(csvColumns[:], ", ")}
		case seen[name]:
			return nil, &RowError{Line: 1, Column: name, Msg: "column appears twice: keep one"}
		}
		seen[name] = true
		cols[i] = name
	}
	for _, req := range csvRequired {
		if !seen[req] {
			return nil, &RowError{Line: 1, Column: req,
				Msg: "required column missing: add a column named " + req}
		}
	}
	return cols, nil
}

// headerKey lower-cases a column name and writes spaces and hyphens as
// underscores, so "Quiet Hours" and "quiet-hours" both mean quiet_hours.
func headerKey(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == '_' }), "_")
}

// rowParseError turns a csv syntax problem into a RowError for its line.
func rowParseError(pe *csv.ParseError, want, got int) RowError {
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return RowError{Line: pe.StartLine,
			Msg: fmt.Sprintf("has %d cells but the header has %d: give every column a cell, empty if unknown", got, want)}
	}
	return RowError{Line: pe.StartLine,
		Msg: fmt.Sprintf("not valid CSV (%v): put cells containing quotes or commas in double quotes and double any quote inside", pe.Err)}
}

// subscriberFromRecord builds and normalises one subscriber, turning every
// problem into a RowError on the column it came from.
func subscriberFromRecord(rec, cols []string, line int) (Subscriber, []RowError) {
	var s Subscriber
	var errs []RowError
	for i, col := range cols {
		v := strings.TrimSpace(rec[i])
		switch col {
		case "id":
			s.ID = v
		case "name":
			s.Name = v
		case "roles":
			s.Roles = splitList(v)
		case "nations":
			s.Nations = splitList(v)
		case "tags":
			s.Tags = splitList(v)
		case "locale":
			s.Locale = v
		case "locale_recorded":
			s.LocaleRecorded = v
		case "locale_source":
			s.LocaleSource = v
		case "timezone":
			s.TimeZone = v
		case "phone":
			s.Phone = v
		case "email":
			s.Email = v
		case "slack":
			s.Slack = v
		case "opted_out":
			s.OptedOut = splitList(v)
		case "quiet_hours":
			q, ok := parseQuietCell(v)
			if !ok {
				errs = append(errs, RowError{Line: line, Column: col, Value: v,
					Msg: "not a time window: write it as start-end in 24-hour time, like 22:00-07:00"})
			}
			s.QuietHours = q
		}
	}
	for _, fe := range s.Normalize() {
		col, _, _ := strings.Cut(fe.Path, ".")
		errs = append(errs, RowError{Line: line, Column: col, Value: fe.Value, Msg: fe.Msg})
	}
	return s, errs
}

// parseQuietCell reads "22:00-07:00" (spaces and an en dash allowed). An
// empty cell means no quiet hours. The times themselves are checked by
// Normalize.
func parseQuietCell(v string) (*QuietHours, bool) {
	if v == "" {
		return nil, true
	}
	v = strings.ReplaceAll(v, "–", "-")
	start, end, ok := strings.Cut(v, "-")
	if !ok || strings.Contains(end, "-") {
		return nil, false
	}
	return &QuietHours{Start: strings.TrimSpace(start), End: strings.TrimSpace(end)}, true
}

// splitList splits a cell on ';', trimming each value and dropping empty ones.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func blankRecord(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func hasColumnError(errs []RowError, col string) bool {
	for _, e := range errs {
		if e.Column == col {
			return true
		}
	}
	return false
}
