package dashboard

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/crier-dev/crier/internal/fields"
)

// Forms: size-limited parsing, and problems kept per form field so each
// is shown twice, as GOV.UK's pattern does: in a summary at the top whose
// links move focus to the field, and next to the field itself.

// maxForm caps a form body: a broadcast's text is far below it.
const maxForm = 256 << 10

// form parses a POSTed form, size-limited.
func (d *Dashboard) form(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		d.badRequest(w, r, fmt.Sprintf("The form could not be read (it may be over %d KiB).", maxForm>>10))
		return false
	}
	return true
}

// fieldErrors is a form's problems keyed by form field, with the summary
// shown at the top of the form in order.
type fieldErrors struct {
	Summary []fieldError
	By      map[string]string
}

type fieldError struct {
	Field, Label, Msg string
}

// fieldLabel names a form field as its label does, for the error summary.
func fieldLabel(field string) string {
	if rest, ok := strings.CutPrefix(field, "impact."); ok {
		num, part, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err == nil {
			return fmt.Sprintf("Impact row %d (%s)", n+1, part)
		}
	}
	switch field {
	case "text":
		return "What has changed"
	case "text_marking", "marking":
		return "Marking"
	case "next_update", "next_update_at":
		return "Next update"
	case "body":
		return "Message"
	case "since":
		return "Planned in the last"
	case "trigger":
		return "Broadcast number"
	case "resolve":
		return "Resolve"
	}
	return label(field)
}

// add records msg against a form field.
func (fe *fieldErrors) add(field, msg string) {
	if fe.By == nil {
		fe.By = map[string]string{}
	}
	fe.Summary = append(fe.Summary, fieldError{Field: field, Label: fieldLabel(field), Msg: msg})
	if _, ok := fe.By[field]; !ok {
		fe.By[field] = msg
	}
}

// Any reports whether there is a problem.
func (fe fieldErrors) Any() bool { return len(fe.Summary) > 0 }

// fromList turns a domain error into form errors, mapping each field path
// through rename (nil: kept). It reports false for an error that is not
// about fields.
func (fe *fieldErrors) fromList(err error, rename func(string) string) bool {
	l, ok := fields.AsList(err)
	if !ok {
		return false
	}
	for _, e := range l {
		f := e.Path
		if rename != nil {
			f = rename(f)
		}
		msg := e.Msg
		if e.Value != "" {
			msg = fmt.Sprintf("%q %s", e.Value, e.Msg)
		}
		fe.add(f, msg)
	}
	return true
}
