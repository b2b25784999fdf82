package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/crier-dev/crier/dispatch"
)

// composeForm is the compose page's values: a broadcast (audience,
// channels, text) or a briefing sent now.
type composeForm struct {
	Mode     string // broadcast or briefing
	Briefing string
	Audience string
	Channels []string
	Subject  string
	Body     string
	Critical bool
	// Repeat sends it even if an identical broadcast went out within the
	// repeat window (the pre-flight page's "send it again" button).
	Repeat bool
}

func (f composeForm) compose(key string) Compose {
	if f.Mode == "briefing" {
		return Compose{Briefing: f.Briefing, Key: key}
	}
	return Compose{Audience: f.Audience, Channels: f.Channels, Subject: f.Subject, Body: f.Body, Critical: f.Critical, Key: key, Repeat: f.Repeat}
}

type composeData struct {
	Ch     Choices
	Form   composeForm
	Errors fieldErrors
	PF     *preflightView
	// RepeatOf is the identical broadcast planned within the repeat
	// window: the send button then sends it again, and says so.
	RepeatOf *repeatView
	// Key is the idempotency key of the send button: pressing it twice,
	// or reloading after it, never sends twice.
	Key string
}

// repeatView is an earlier identical broadcast laid out for the page.
type repeatView struct {
	ID        int64
	Key       string
	PlannedAt string
	Ago       string
}

// preflightView is a pre-flight laid out for the page.
type preflightView struct {
	dispatch.Preflight
	Rows []preflightChannel
	Cost string
}

type preflightChannel struct {
	Name    string
	C       *dispatch.ChannelPreflight
	Locales string // "en 12, cy 3"
	Cost    string
}

func money(v float64, currency string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f %s", v, currency)
}

func newPreflightView(pf dispatch.Preflight) *preflightView {
	v := &preflightView{Preflight: pf, Cost: money(pf.EstimatedCost, pf.Currency)}
	names := make([]string, 0, len(pf.Channels))
	for n := range pf.Channels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := pf.Channels[n]
		locs := make([]string, 0, len(c.ByLocale))
		for l, k := range c.ByLocale {
			locs = append(locs, fmt.Sprintf("%s %d", l, k))
		}
		sort.Strings(locs)
		v.Rows = append(v.Rows, preflightChannel{Name: n, C: c, Locales: strings.Join(locs, ", "), Cost: money(c.EstimatedCost, c.Currency)})
	}
	return v
}

func (d *Dashboard) compose(w http.ResponseWriter, r *http.Request) {
	ch := d.o.App.Choices()
	f := composeForm{Mode: "broadcast"}
	if b := r.URL.Query().Get("briefing"); b != "" {
		f.Mode, f.Briefing = "briefing", b
	}
	d.render(w, r, http.StatusOK, "compose", "Send a message", composeData{Ch: ch, Form: f})
}

// readCompose reads the compose form, keeping only channels that exist
// (a checkbox list cannot name others unless forged).
func readCompose(r *http.Request, ch Choices) composeForm {
	f := r.PostForm
	cf := composeForm{Mode: f.Get("mode"), Briefing: f.Get("briefing"), Audience: f.Get("audience"), Subject: strings.TrimSpace(f.Get("subject")),
		Body: strings.TrimSpace(f.Get("body")), Critical: f.Get("critical") != "", Repeat: f.Get("repeat") != ""}
	if cf.Mode != "briefing" {
		cf.Mode = "broadcast"
	}
	for _, c := range f["channels"] {
		if slices.ContainsFunc(ch.Channels, func(x ChannelChoice) bool { return x.Name == c }) && !slices.Contains(cf.Channels, c) {
			cf.Channels = append(cf.Channels, c)
		}
	}
	return cf
}

// preflight checks a broadcast or briefing and shows who would get what,
// with the send button.
func (d *Dashboard) preflight(w http.ResponseWriter, r *http.Request) {
	if !d.form(w, r) {
		return
	}
	ch := d.o.App.Choices()
	data := composeData{Ch: ch, Form: readCompose(r, ch)}
	pf, err := d.o.App.Preflight(r.Context(), data.Form.compose(""))
	if err != nil {
		if !data.Errors.fromList(err, nil) {
			d.fail(w, r, err)
			return
		}
		d.render(w, r, http.StatusUnprocessableEntity, "compose", "Send a message", data)
		return
	}
	data.PF = newPreflightView(pf)
	if data.Form.Mode == "broadcast" {
		tr, err := d.o.App.RepeatOf(r.Context(), data.Form.compose(""))
		if err != nil {
			d.fail(w, r, err)
			return
		}
		if tr != nil {
			data.RepeatOf = &repeatView{ID: tr.ID, Key: tr.Key, PlannedAt: d.when(tr.CreatedAt), Ago: d.ago(tr.CreatedAt)}
		}
	}
	data.Key = newKey()
	d.render(w, r, http.StatusOK, "compose", "Check and send", data)
}

// newKey is a random idempotency key for one send button.
func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// send plans the checked broadcast or briefing and shows its progress.
func (d *Dashboard) send(w http.ResponseWriter, r *http.Request) {
	if !d.form(w, r) {
		return
	}
	ch := d.o.App.Choices()
	form := readCompose(r, ch)
	key := r.PostForm.Get("key")
	if len(key) < 16 || len(key) > 64 || strings.Trim(key, "0123456789abcdef") != "" {
		d.badRequest(w, r, "This send button has expired or was changed. Check the message again and send it from the new page.")
		return
	}
	out, err := d.o.App.Broadcast(r.Context(), form.compose(key))
	if err != nil {
		data := composeData{Ch: ch, Form: form}
		if !data.Errors.fromList(err, nil) {
			d.fail(w, r, err)
			return
		}
		d.render(w, r, http.StatusUnprocessableEntity, "compose", "Send a message", data)
		return
	}
	d.o.Notify()
	ok := "sent"
	switch {
	case out.RepeatOf != nil:
		ok = "repeat"
	case !out.Created:
		ok = "again"
	}
	http.Redirect(w, r, fmt.Sprintf("/broadcasts/%d?ok=%s&n=%d", out.TriggerID, ok, out.Queued), http.StatusSeeOther)
}
