package templates

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
)

// Rendered is one message's content for one recipient.
type Rendered struct {
	// Subject is the email subject or the Slack header, on one line; empty
	// for SMS and when a Slack template has no subject.
	Subject string
	// Text is the SMS text, the email text part or the Slack mrkdwn text.
	Text string
	// HTML is the email HTML part; empty when there is no html block.
	HTML string
	// Encoding is the SMS encoding; empty for other kinds.
	Encoding Encoding
	// Segments is the number of SMS segments Text takes; 0 for other kinds.
	Segments int
}

// Render executes the blocks for event × kind in locale with d. There is
// no fallback to another locale: when a required block is missing the
// error is a *MissingError. Subject and text parts are executed with
// text/template and email html parts with html/template (contextual
// escaping). For Slack every string in d is escaped with EscapeSlack first,
// so an incident title can never mention @channel, while the template
// itself may use mrkdwn. SMS text is passed through NormalizeSMS and its
// encoding and segments are reported; other text parts have trailing
// spaces and runs of blank lines removed; subjects are made one line.
func (s *Set) Render(event string, kind channels.Kind, locale string, d Data) (Rendered, error) {
	if missing := s.missing(event, kind, locale); len(missing) > 0 {
		return Rendered{}, &MissingError{Event: event, Kind: kind, Locale: locale, Blocks: missing}
	}
	ls := s.locales[locale]
	loc, err := s.zone(d.RecipientTimeZone)
	if err != nil {
		return Rendered{}, err
	}
	d = prepare(d, loc, kind == channels.KindSlack)
	d.Event = event
	if d.RecipientLocale == "" {
		d.RecipientLocale = locale
	}
	if d.NowLocal == "" {
		d.NowLocal = ls.words.format(d.Now)
	}

	var r Rendered
	exec := func(part string) (string, error) {
		name := blockName(event, kind, part)
		var buf bytes.Buffer
		var err error
		if part == PartHTML {
			err = ls.html.ExecuteTemplate(&buf, name, d)
		} else {
			err = ls.text.ExecuteTemplate(&buf, name, d)
		}
		if err != nil {
			return "", fmt.Errorf("templates: render %s/%s: %w", locale, name, err)
		}
		return buf.String(), nil
	}
	_, used := requiredParts(kind)
	for _, part := range used {
		if !ls.has(blockName(event, kind, part)) {
			continue
		}
		out, err := exec(part)
		if err != nil {
			return Rendered{}, err
		}
		switch part {
		case PartSubject:
			r.Subject = strings.Join(strings.Fields(out), " ")
		case PartText:
			if kind == channels.KindSMS {
				r.Text = NormalizeSMS(out)
			} else {
				r.Text = tidyText(out)
			}
		case PartHTML:
			r.HTML = strings.TrimSpace(out)
		}
	}
	if r.Text == "" {
		return Rendered{}, fmt.Errorf("templates: render %s/%s: the text is empty", locale, blockName(event, kind, PartText))
	}
	if kind == channels.KindEmail && r.Subject == "" {
		return Rendered{}, fmt.Errorf("templates: render %s/%s: the subject is empty", locale, blockName(event, kind, PartSubject))
	}
	if kind == channels.KindSMS {
		r.Encoding, r.Segments = SMSSegments(r.Text)
	}
	return r, nil
}

// Check renders every event × kind × locale that has at least one block
// against SampleDataFor(locale), briefings also against
// SampleFirstBriefing(locale) so that both branches of a briefing are
// executed, and alerts, updates and messages also against
// SampleAck(locale) (their acknowledgement branch). It returns every
// failure (each once): execution errors (a missing field, an unknown
// partial), missing required parts, empty output, and blocks whose name looks like "<event>.<kind>.<part>" but
// names an unknown event or a part the kind never sends (such a block
// would silently never be used). An SMS sample longer than three segments
// is not a failure.
func (s *Set) Check() []error {
	var errs []error
	seen := map[string]bool{}
	add := func(err error) {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for _, locale := range Locales() {
		ls := s.locales[locale]
		samples := []Data{SampleDataFor(locale)}
		for _, event := range Events() {
			switch event {
			case EventBriefing:
				samples = append(samples, SampleFirstBriefing(locale))
			case EventAlert, EventUpdate, EventMessage:
				samples = append(samples, SampleAck(locale)) // the acknowledgement branch
			}
			for _, kind := range channels.Kinds {
				if !s.anyPart(ls, event, kind) {
					continue
				}
				for _, sample := range samples {
					_, err := s.Render(event, kind, locale, sample)
					add(err)
				}
			}
			samples = samples[:1]
		}
		for _, err := range s.unusedBlocks(locale, ls) {
			add(err)
		}
	}
	return errs
}

// anyPart reports whether the locale defines any part of event × kind.
func (s *Set) anyPart(ls *localeSet, event string, kind channels.Kind) bool {
	for _, p := range []string{PartSubject, PartText, PartHTML} {
		if ls.has(blockName(event, kind, p)) {
			return true
		}
	}
	return false
}

// unusedBlocks reports blocks named like a message part that no Render
// would ever execute.
func (s *Set) unusedBlocks(locale string, ls *localeSet) []error {
	events := map[string]bool{}
	for _, e := range Events() {
		events[e] = true
	}
	var errs []error
	for _, name := range s.Names() {
		l, block, _ := strings.Cut(name, "/")
		if l != locale {
			continue
		}
		parts := strings.Split(block, ".")
		if len(parts) != 3 {
			continue
		}
		kind, err := channels.ParseKind(parts[1])
		if err != nil {
			continue // not a message block: a partial with dots in its name
		}
		if !events[parts[0]] {
			errs = append(errs, fmt.Errorf("templates: %s: unknown event %q (want one of %s); this block is never used",
				name, parts[0], strings.Join(Events(), ", ")))
			continue
		}
		_, used := requiredParts(kind)
		if !contains(used, parts[2]) {
			errs = append(errs, fmt.Errorf("templates: %s: %s messages have no %s part (they use %s); this block is never used",
				name, kind, parts[2], strings.Join(used, ", ")))
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tidyText removes trailing spaces from every line and collapses runs of
// blank lines, so template authors can lay blocks out readably; leading
// indentation is kept because plain-text emails use it.
func tidyText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return tidyLines(s, func(l string) string { return strings.TrimRight(l, " \t") })
}

// tidyLines cleans every line of s with clean and collapses runs of blank
// lines into one, dropping blank lines at the start.
func tidyLines(s string, clean func(string) string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := false
	for _, l := range lines {
		l = clean(l)
		if l == "" {
			blank = true
			continue
		}
		if blank && len(out) > 0 {
			out = append(out, "")
		}
		blank = false
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// slackEscaper escapes the three characters Slack treats as markup
// delimiters.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// EscapeSlack escapes & < > the way Slack requires for message text, which
// also turns "<!channel>" and "<@U123>" into inert text. mrkdwn emphasis
// (*bold*, _italic_) cannot be escaped and is left alone.
func EscapeSlack(s string) string { return slackEscaper.Replace(s) }

var timeType = reflect.TypeOf(time.Time{})

// prepare returns a deep copy of d with every time moved into loc and, for
// Slack, every string escaped. It walks d by reflection so that a field
// added to Data later is escaped without anyone remembering to.
func prepare(d Data, loc *time.Location, slack bool) Data {
	str := func(s string) string { return s }
	if slack {
		str = EscapeSlack
	}
	out := walk(reflect.ValueOf(d), loc, str)
	return out.Interface().(Data)
}

// walk copies v, applying str to strings and moving times into loc.
func walk(v reflect.Value, loc *time.Location, str func(string) string) reflect.Value {
	switch {
	case v.Type() == timeType:
		t := v.Interface().(time.Time)
		if t.IsZero() {
			return v
		}
		return reflect.ValueOf(t.In(loc))
	case v.Kind() == reflect.String:
		n := reflect.New(v.Type()).Elem()
		n.SetString(str(v.String()))
		return n
	case v.Kind() == reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if f := n.Field(i); f.CanSet() {
				f.Set(walk(v.Field(i), loc, str))
			}
		}
		return n
	case v.Kind() == reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(walk(v.Index(i), loc, str))
		}
		return n
	}
	return v
}
