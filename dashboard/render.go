package dashboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/crier-dev/crier/store"
)

// pageTemplate is one page: the layout, the shared partials and the
// page's own "title" and "content" blocks.
type pageTemplate struct {
	t *template.Template
}

// view is what every page template gets: who is signed in, where they
// are, and the page's own data as D.
type view struct {
	Title      string
	Me         Principal
	SignedIn   bool
	CanOperate bool
	Path       string
	Flash      string
	Now        time.Time
	D          any
}

// staticURLs maps each embedded static file to its URL with a content
// hash, so browsers may cache it and still see a new release at once.
func staticURLs() (map[string]string, error) {
	out := map[string]string{}
	files, err := fs.Glob(webFS, "web/static/*")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := webFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out[path.Base(f)] = "/static/" + path.Base(f) + "?v=" + hex.EncodeToString(sum[:4])
	}
	return out, nil
}

func (d *Dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"when": d.when,
		"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago":  d.ago,
		"static": func(name string) (string, error) {
			if u, ok := d.statics[name]; ok {
				return u, nil
			}
			return "", fmt.Errorf("no static file %q", name)
		},
		"label":   func(v any) string { return label(fmt.Sprint(v)) },
		"tag":     func(v any) string { return tagClass(fmt.Sprint(v)) },
		"add":     func(a, b int) int { return a + b },
		"join":    strings.Join,
		"percent": percent,
		"nation":  nationName,
		"nations": func(ns []string) string {
			out := make([]string, len(ns))
			for i, n := range ns {
				out[i] = nationName(n)
			}
			return strings.Join(out, ", ")
		},
		"what": triggerTitle,
		// fielderr is a field's error for the "fielderr" template; errid
		// is its element id for aria-describedby ("" without an error).
		"fielderr": func(by map[string]string, field string) map[string]string {
			return map[string]string{"ID": field, "Msg": by[field]}
		},
		"errid": func(by map[string]string, field string) string {
			if by[field] == "" {
				return ""
			}
			return field + "-error"
		},
		"kind": kindName,
		"args": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, errors.New("args needs name, value pairs")
			}
			m := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("args: name %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"has": func(list []string, v string) bool {
			for _, x := range list {
				if x == v {
					return true
				}
			}
			return false
		},
	}
}

// parse builds every page template from the embedded files.
func (d *Dashboard) parse() error {
	statics, err := staticURLs()
	if err != nil {
		return fmt.Errorf("dashboard: static files: %w", err)
	}
	d.statics = statics
	common, err := template.New("layout.html").Funcs(d.funcs()).ParseFS(webFS, "web/templates/layout.html", "web/templates/partials.html")
	if err != nil {
		return fmt.Errorf("dashboard: parse layout: %w", err)
	}
	names, err := fs.Glob(webFS, "web/templates/page_*.html")
	if err != nil {
		return fmt.Errorf("dashboard: list pages: %w", err)
	}
	d.pages = map[string]*pageTemplate{}
	for _, n := range names {
		t, err := template.Must(common.Clone()).ParseFS(webFS, n)
		if err != nil {
			return fmt.Errorf("dashboard: parse %s: %w", path.Base(n), err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(path.Base(n), "page_"), ".html")
		d.pages[name] = &pageTemplate{t: t}
	}
	return nil
}

// when shows a time in the dashboard's zone with the zone's name, "—" for
// the zero time.
func (d *Dashboard) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(d.o.Location).Format("Mon 2 Jan 15:04:05 MST")
}

// ago says how long before now t was, in words a tired person reads at a
// glance.
func (d *Dashboard) ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	dur := d.o.Now().Sub(t)
	future := dur < 0
	if future {
		dur = -dur
	}
	var s string
	switch {
	case dur < time.Minute:
		return "just now"
	case dur < time.Hour:
		s = fmt.Sprintf("%d min", int(dur.Minutes()))
	case dur < 48*time.Hour:
		s = fmt.Sprintf("%d h %d min", int(dur.Hours()), int(dur.Minutes())%60)
	default:
		s = fmt.Sprintf("%d days", int(dur.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// kindName is a trigger kind as people say it.
func kindName(kind string) string {
	switch kind {
	case "send":
		return "broadcast"
	case "incident":
		return "incident alert"
	}
	return kind
}

// label is a status or reason word as a person reads it.
func label(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(s, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// tagClass maps a status word to its CSS class; unknown words get the
// neutral one (the class name never carries outside text).
func tagClass(s string) string {
	switch s {
	case "queued", "sending", "sent", "delivered", "failed", "expired", "suppressed", "unknown", "acknowledged",
		"critical", "major", "minor", "investigating", "identified", "monitoring", "resolved",
		"operational", "degraded", "outage", "restored", "late", "missed", "ok", "pending":
		return "tag tag-" + s
	}
	return "tag"
}

// nationName is a nation's canonical name as people write it
// ("northern-ireland" is "Northern Ireland").
func nationName(n string) string {
	words := strings.Split(n, "-")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func percent(part, whole int) int {
	if whole <= 0 {
		return 0
	}
	return part * 100 / whole
}

// secure sets the headers every dashboard answer carries: no caching of
// pages that show who was told what, no framing, scripts and styles only
// from here (a rendered email's inline styles may stay; its scripts may
// not, and its remote images are not fetched).
func secure(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "+
			"frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		if hd.Get("Cache-Control") == "" {
			hd.Set("Cache-Control", "no-store")
		}
		h(w, r)
	}
}

// render executes page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	pt := d.pages[page]
	if pt == nil {
		d.o.Log.Error("dashboard: no such page template", "page", page)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	me, ok := d.o.Who(r)
	v := view{Title: title, Me: me, SignedIn: ok, CanOperate: ok && me.can("operator"), Path: r.URL.Path, Now: d.o.Now(), D: data,
		Flash: flash(r.URL.Query())}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, "layout", v); err != nil {
		d.o.Log.Error("dashboard: render", "page", page, "err", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// problem is the data of the error page.
type problem struct {
	Status  int
	Message string
	Back    string
}

// fail shows err as a page: a missing thing is 404 with the store's
// message (it names what was looked up), anything else 500, logged and
// not echoed.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		d.render(w, r, http.StatusNotFound, "error", "Not found", problem{Status: http.StatusNotFound, Message: err.Error(), Back: "/"})
		return
	}
	if r.Context().Err() != nil {
		return // the browser went away
	}
	d.o.Log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
	d.render(w, r, http.StatusInternalServerError, "error", "Something went wrong",
		problem{Status: http.StatusInternalServerError, Message: "Something went wrong on the server; the details are in its log.", Back: r.URL.Path})
}

// badRequest shows a 400 page with a message the person can act on.
func (d *Dashboard) badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	d.render(w, r, http.StatusBadRequest, "error", "Cannot do that", problem{Status: http.StatusBadRequest, Message: msg, Back: "/"})
}

// static serves the embedded stylesheet and script.
func (d *Dashboard) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := webFS.ReadFile("web/static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}
