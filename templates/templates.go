// Package templates turns flat Data into the subject, text and HTML of one
// message for one event, channel kind and locale. Default templates in
// English (en) and Welsh (cy) are embedded; an override directory can
// replace or add blocks per locale. A template is a named block
// "<event>.<kind>.<part>" (for example "alert.sms.text"); blocks whose
// names start with "_" are partials that other blocks include.
//
// There is no fallback between locales: the Welsh Language Standards do
// not allow English to be sent silently in place of Welsh, so a missing
// Welsh block is an error the dispatcher plans around.
//
// Templates see a flat Data and these functions, bound to the locale
// (times need no zone argument: Render has already moved every time in
// Data into the recipient's zone):
//
//	localtime T                 date and time in the locale ("Dydd Mawrth 16 Mehefin 2026, 08:00 BST"); "" for the zero time
//	clock T                     "08:00"; "" for the zero time
//	upper S                     upper case
//	join SEP LIST               joins a []string
//	nation ID                   display name of a canonical nation id (wales → Wales / Cymru)
//	severity S                  display word for critical|major|minor
//	status S                    display word for an incident status or an impact status
//	impactsIn IMPACTS NATIONS   the impacts in any of NATIONS ([]string); all of them when NATIONS is empty
//	byNation IMPACTS            impacts grouped per nation ([]NationImpacts): England, Scotland, Wales, Northern Ireland
//	latest N ENTRIES            the last N timeline entries, oldest first
//	active INCIDENTS            the incidents whose status is not resolved
//	resolved INCIDENTS          the incidents whose status is resolved
//	union A B                   the incidents of A, then those of B not already in A (by IncidentID)
//	allImpacts INCIDENTS        every impact of every incident, in order
//	disrupted IMPACTS           the impacts whose status is degraded or outage
//	changesIn CHANGES NATIONS   the impact changes ([]ImpactChange) in any of NATIONS; all of them when NATIONS is empty
//	restored CHANGES            the impact changes that brought a service back (degraded or outage → restored or operational)
//	workarounds IMPACTS         the disrupted impacts that have a workaround: the actions in force
//	marking M                   a protective marking as a banner prints it (cy adds the Welsh term)
//	sensitive M                 true for a marking above OFFICIAL ("" and OFFICIAL are not)
//	withheldNotice              WithheldNotice for the locale
//	clockOr T S                 "17:00" for a non-zero T, otherwise S (for the *At times that may be unset)
//
// A value the vocabulary does not know is printed as it is, so a new
// status never breaks a message.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/crier-dev/crier/channels"
)

//go:embed defaults
var defaultsFS embed.FS

// The parts of a block name.
const (
	PartSubject = "subject"
	PartText    = "text"
	PartHTML    = "html"
)

// Set is a loaded, parsed set of templates for every locale. It is safe
// for concurrent use.
type Set struct {
	locales map[string]*localeSet

	mu    sync.Mutex
	zones map[string]*time.Location // time.LoadLocation reads a file each call

	personal sync.Map // personalKey → personalAnswer, Personal's analyses
}

// localeSet is one locale's blocks, parsed twice: text/template executes
// subject and text parts, html/template (contextual escaping) executes
// html parts.
type localeSet struct {
	words *words
	text  *template.Template
	html  *htmltemplate.Template
	files map[string]bool // names of the per-file templates, which are not blocks
}

// ParseError is a template file that failed to parse: the file, the line
// and what is wrong.
type ParseError struct {
	File string // the file as given: an override path, or defaults/<locale>/<name>
	Line int    // 1-based; 0 when the parser did not say
	Msg  string // the parser's message
}

// Error reads "templates: FILE:LINE: what is wrong".
func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("templates: %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("templates: %s: %s", e.File, e.Msg)
}

// Load parses the embedded defaults and, when overrideDir is not empty,
// the override files <overrideDir>/<locale>/*.tmpl on top of them: a block
// defined in an override replaces the default of the same name in that
// locale, and new blocks are added. Only locales crier has vocabulary for
// (see Locales) may be overridden. A file that fails to parse is a
// *ParseError naming the file and line.
func Load(overrideDir string) (*Set, error) {
	s := &Set{locales: map[string]*localeSet{}, zones: map[string]*time.Location{}}
	for _, locale := range Locales() {
		ls := &localeSet{words: localeWords(locale), files: map[string]bool{}}
		fm := funcMap(ls.words)
		ls.text = template.New(locale).Funcs(fm)
		ls.html = htmltemplate.New(locale).Funcs(htmltemplate.FuncMap(fm))
		s.locales[locale] = ls
		files, err := fs.Glob(defaultsFS, "defaults/"+locale+"/*.tmpl")
		if err != nil {
			return nil, fmt.Errorf("templates: list defaults: %w", err)
		}
		for _, f := range files {
			src, err := defaultsFS.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("templates: read default %s: %w", f, err)
			}
			if err := ls.parse(f, string(src)); err != nil {
				return nil, err
			}
		}
	}
	if overrideDir != "" {
		if err := s.loadOverrides(overrideDir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loadOverrides parses <dir>/<locale>/*.tmpl for every locale directory.
func (s *Set) loadOverrides(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("templates: override directory %q: %w (set it to an existing directory, or leave it empty for the built-in templates)", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			if strings.HasSuffix(name, ".tmpl") {
				return fmt.Errorf("templates: override file %q is not in a locale directory: move it to %s",
					filepath.Join(dir, name), filepath.Join(dir, "<locale>", name))
			}
			continue // READMEs and the like
		}
		ls := s.locales[name]
		if ls == nil {
			return fmt.Errorf("templates: override directory %q: %q is not a supported locale (want %s); rename or remove it",
				dir, name, strings.Join(Locales(), " or "))
		}
		files, err := filepath.Glob(filepath.Join(dir, name, "*.tmpl"))
		if err != nil {
			return fmt.Errorf("templates: list overrides: %w", err)
		}
		sort.Strings(files)
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("templates: read override: %w", err)
			}
			if err := ls.parse(f, string(src)); err != nil {
				return err
			}
		}
	}
	return nil
}

// parse adds one file's blocks to both template sets. The file's own
// template (its text outside any {{define}}) must be empty: text there
// would never be sent, so it is almost certainly a mistake.
func (ls *localeSet) parse(file, src string) error {
	t, err := ls.text.New(file).Parse(src)
	if err != nil {
		return parseError(file, err)
	}
	if _, err := ls.html.New(file).Parse(src); err != nil {
		return parseError(file, err)
	}
	ls.files[file] = true
	if t.Tree != nil && !parse.IsEmptyTree(t.Root) {
		line := 0
		for _, n := range t.Root.Nodes {
			if !parse.IsEmptyTree(n) {
				// Point at the first non-blank character, not at the end
				// of the block before it.
				off := int(n.Position())
				if tn, ok := n.(*parse.TextNode); ok {
					off += len(tn.Text) - len(bytes.TrimLeft(tn.Text, " \t\r\n"))
				}
				line = 1 + strings.Count(src[:min(off, len(src))], "\n")
				break
			}
		}
		return &ParseError{File: file, Line: line, Msg: "text outside a {{define}} block is never used; put it inside a block"}
	}
	return nil
}

// parseError turns a text/template parse error ("template: FILE:LINE: msg")
// into a *ParseError.
func parseError(file string, err error) error {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+file+":")
	if !ok {
		return &ParseError{File: file, Msg: msg}
	}
	num, tail, _ := strings.Cut(rest, ":")
	line, convErr := strconv.Atoi(num)
	if convErr != nil {
		return &ParseError{File: file, Msg: msg}
	}
	return &ParseError{File: file, Line: line, Msg: strings.TrimSpace(tail)}
}

// blockName builds "<event>.<kind>.<part>".
func blockName(event string, kind channels.Kind, part string) string {
	return event + "." + string(kind) + "." + part
}

// requiredParts lists the parts a kind must have, and the parts it uses.
func requiredParts(kind channels.Kind) (required, used []string) {
	switch kind {
	case channels.KindSMS:
		return []string{PartText}, []string{PartText}
	case channels.KindEmail:
		return []string{PartSubject, PartText}, []string{PartSubject, PartText, PartHTML}
	case channels.KindSlack:
		return []string{PartText}, []string{PartSubject, PartText}
	}
	return nil, nil
}

// has reports whether a block is defined in the locale.
func (ls *localeSet) has(name string) bool { return ls.text.Lookup(name) != nil }

// missing returns the required blocks the locale lacks for event × kind.
func (s *Set) missing(event string, kind channels.Kind, locale string) []string {
	required, _ := requiredParts(kind)
	if len(required) == 0 {
		return []string{blockName(event, kind, PartText)}
	}
	ls := s.locales[locale]
	var out []string
	for _, p := range required {
		if name := blockName(event, kind, p); ls == nil || !ls.has(name) {
			out = append(out, name)
		}
	}
	return out
}

// Has reports whether the locale has every required part for event ×
// kind: text for SMS and Slack, subject and text for email.
func (s *Set) Has(event string, kind channels.Kind, locale string) bool {
	return len(s.missing(event, kind, locale)) == 0
}

// Names lists every block (including partials) per locale, sorted, as
// "<locale>/<block>" ("cy/alert.sms.text").
func (s *Set) Names() []string {
	var out []string
	for locale, ls := range s.locales {
		for _, t := range ls.text.Templates() {
			if n := t.Name(); n != locale && !ls.files[n] {
				out = append(out, path.Join(locale, n))
			}
		}
	}
	sort.Strings(out)
	return out
}

// MissingError says that a locale has no template (or not every required
// part) for an event and channel kind. It is not a rendering failure to
// retry: the recipient cannot be sent this message in their language.
type MissingError struct {
	Event  string
	Kind   channels.Kind
	Locale string
	// Blocks are the required blocks that are missing.
	Blocks []string
}

// Error names the event, kind, locale and missing blocks, and says where
// to add them.
func (e *MissingError) Error() string {
	return fmt.Sprintf("templates: no %s %s template in locale %q (missing %s); add it to <templates dir>/%s/",
		e.Event, e.Kind, e.Locale, strings.Join(e.Blocks, ", "), e.Locale)
}

// IsMissing reports whether err is (or wraps) a *MissingError.
func IsMissing(err error) bool {
	var me *MissingError
	return errors.As(err, &me)
}

// zone returns the *time.Location for an IANA name, cached.
func (s *Set) zone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if loc, ok := s.zones[name]; ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("templates: recipient time zone %q: %w (use an IANA name such as Europe/London)", name, err)
	}
	s.zones[name] = loc
	return loc, nil
}
