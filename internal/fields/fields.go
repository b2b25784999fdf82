// Package fields holds the two small types every configurable component
// shares: Secret, a credential that never prints, and Error/List, problems
// with one named field that the config loader reports all at once with
// their key paths.
package fields

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Secret is a credential (a token, a password). It prints, logs and
// marshals as "<secret>"; Reveal returns the value for the one place that
// needs it. In YAML a secret is written as ${ENV_NAME}, or given in a
// sibling "<key>_file" field; the config loader resolves it.
type Secret string

// Redacted is how a Secret prints.
const Redacted = "<secret>"

// String implements fmt.Stringer so %s, %v and %q never show the value.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer so %#v never shows the value.
func (s Secret) GoString() string { return Redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON never writes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText never writes the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML never writes the value.
func (s Secret) MarshalYAML() (any, error) { return Redacted, nil }

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s != "" }

// Error is one problem with one field: where it is (a dotted key path such
// as "channels.clinician-sms.from"), the offending value, and what to do.
type Error struct {
	Path  string
	Value string
	Msg   string
	Line  int // YAML line, 0 when unknown
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Path)
	if e.Value != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// List collects field problems so that every one is reported at once.
type List []*Error

// Add records a problem; msg is a format string.
func (l *List) Add(path, value, msg string, args ...any) {
	*l = append(*l, &Error{Path: path, Value: value, Msg: fmt.Sprintf(msg, args...)})
}

// Merge appends other's problems, each path prefixed with prefix and a dot
// (when prefix is not empty).
func (l *List) Merge(prefix string, other List) {
	for _, e := range other {
		c := *e
		if prefix != "" {
			if c.Path == "" {
				c.Path = prefix
			} else {
				c.Path = prefix + "." + c.Path
			}
		}
		*l = append(*l, &c)
	}
}

// Err returns nil for an empty list, or an error listing every problem on
// its own line. errors.As with *List recovers the list.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return &l
}

// Error lists every problem, one a line.
func (l *List) Error() string {
	lines := make([]string, len(*l))
	for i, e := range *l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// AsList returns the problems in err if it is (or wraps) a *List.
func AsList(err error) (List, bool) {
	var l *List
	if errors.As(err, &l) {
		return *l, true
	}
	return nil, false
}
