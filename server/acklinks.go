package server

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// Acknowledgement links: GET /ack/{token} shows what is being
// acknowledged and a Confirm button; only the POST that button sends
// records anything, so a mail scanner or link preview that fetches the
// link acknowledges nothing. The token is verified before anything is
// read or written: an altered one is refused (403), an expired one too
// (410), each with a page that says what to do instead.

// AckPath is the route of acknowledgement links; the token follows it.
const AckPath = "/ack/"

// AckVerifier checks acknowledgement tokens (a *dispatch.AckSigner).
type AckVerifier interface {
	Verify(token string, now time.Time) (dispatch.AckClaim, error)
}

// AckStore is what acknowledgement links and buttons read and change.
type AckStore interface {
	AckLinkTarget(ctx context.Context, triggerID int64, subscriberID string, deliveryID int64) (store.AckLinkTarget, error)
	RecordAck(ctx context.Context, deliveryID int64, via, detail string) (store.AckResult, error)
}

// AckOptions configure acknowledgement links and the Slack interaction
// webhook. Without Tokens and Store neither is served.
type AckOptions struct {
	Tokens AckVerifier
	Store  AckStore
	// SlackSigningSecret verifies POST /webhooks/slack/interactions; that
	// route is not served without it.
	SlackSigningSecret fields.Secret
	// Now is the clock tokens expire by (default time.Now). Slack's own
	// timestamp check always uses the real time, as Slack's clock does.
	Now func() time.Time
	// Acked, if set, is called after an acknowledgement was recorded (the
	// escalator may stop at once instead of at its next tick).
	Acked func(triggerID int64)
}

// ackHooks serves the links and the Slack interactions.
type ackHooks struct {
	s *Server
	o AckOptions
}

// registerAcks serves acknowledgement links and Slack interactions when
// they are configured.
func (s *Server) registerAcks() {
	o := s.o.Acks
	if o == nil || o.Tokens == nil || o.Store == nil {
		return
	}
	h := &ackHooks{s: s, o: *o}
	if h.o.Now == nil {
		h.o.Now = time.Now
	}
	s.route("GET", AckPath+"{token}", "", h.page)
	s.route("POST", AckPath+"{token}", "", h.confirm)
	if o.SlackSigningSecret.IsSet() {
		s.route("POST", SlackInteractionsPath, "", h.slack)
	}
}

// resolve verifies a token and finds what it acknowledges. On failure it
// writes the page itself and returns false.
func (h *ackHooks) resolve(w http.ResponseWriter, r *http.Request) (store.AckLinkTarget, bool) {
	claim, err := h.o.Tokens.Verify(r.PathValue("token"), h.o.Now())
	switch {
	case errors.Is(err, dispatch.ErrAckTokenExpired):
		h.s.observe(AckPath, "expired")
		ackPage(w, http.StatusGone, "", pageExpired)
		return store.AckLinkTarget{}, false
	case err != nil:
		h.s.observe(AckPath, "invalid")
		ackPage(w, http.StatusForbidden, "", pageInvalid)
		return store.AckLinkTarget{}, false
	}
	t, err := h.o.Store.AckLinkTarget(r.Context(), claim.TriggerID, claim.SubscriberID, claim.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		h.s.observe(AckPath, "not_found")
		ackPage(w, http.StatusNotFound, "", pageNotFound)
		return t, false
	}
	if err != nil {
		h.s.o.Log.Error("acknowledgement link", "err", err)
		ackPage(w, http.StatusInternalServerError, "", pageError)
		return t, false
	}
	return t, true
}

// page shows what the link acknowledges and the Confirm button. It
// changes nothing.
func (h *ackHooks) page(w http.ResponseWriter, r *http.Request) {
	t, ok := h.resolve(w, r)
	if !ok {
		return
	}
	h.s.observe(AckPath, "shown")
	if !t.AckedAt.IsZero() {
		ackPage(w, http.StatusOK, t.Locale, pageAlready, t)
		return
	}
	ackPage(w, http.StatusOK, t.Locale, pageConfirm, t)
}

// confirm records the acknowledgement. A second POST finds it recorded
// and says so; the first one stands.
func (h *ackHooks) confirm(w http.ResponseWriter, r *http.Request) {
	t, ok := h.resolve(w, r)
	if !ok {
		return
	}
	res, err := h.o.Store.RecordAck(r.Context(), t.DeliveryID, t.Kind, "confirmed on the acknowledgement page")
	if err != nil {
		h.s.o.Log.Error("record acknowledgement", "trigger", t.TriggerKey, "subscriber", t.SubscriberID, "err", err)
		ackPage(w, http.StatusInternalServerError, t.Locale, pageError)
		return
	}
	t.AckedAt = res.At
	if !res.Recorded {
		h.s.observe(AckPath, "duplicate")
		ackPage(w, http.StatusOK, t.Locale, pageAlready, t)
		return
	}
	h.s.observe(AckPath, "acknowledged")
	h.s.o.Log.Info("acknowledged by link", "trigger", t.TriggerKey, "subscriber", t.SubscriberID, "delivery", t.DeliveryID)
	if h.o.Acked != nil {
		h.o.Acked(t.TriggerID)
	}
	t.AckVia = t.Kind
	ackPage(w, http.StatusOK, t.Locale, pageDone, t)
}

// The pages an acknowledgement link can show.
const (
	pageConfirm = iota
	pageDone
	pageAlready
	pageExpired
	pageInvalid
	pageNotFound
	pageError
)

// ackPageData is what the page template prints.
type ackPageData struct {
	Lang, Title string
	Parts       []ackPagePart
}

// ackPagePart is the page in one language: a page whose language is not
// known (a token that could not be read) is shown in English and Welsh.
type ackPagePart struct {
	Lang, Heading string
	Paras         []string
	Subject       string // what is acknowledged, shown as a quotation
	Button        string // "" for no form
}

// ackPage writes one page with security headers fit for a page whose URL
// is a credential: never cached, never sent on as a referrer, never framed.
func ackPage(w http.ResponseWriter, status int, locale string, which int, t ...store.AckLinkTarget) {
	var tg store.AckLinkTarget
	if len(t) > 0 {
		tg = t[0]
	}
	locales := []string{locale}
	if locale == "" {
		locales = []string{"en", "cy"}
	} else if locale != "cy" {
		locales = []string{"en"}
	}
	d := ackPageData{Lang: locales[0]}
	for _, l := range locales {
		p := ackWords(l, which, tg)
		d.Parts = append(d.Parts, p)
		if d.Title == "" {
			d.Title = p.Heading
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = ackPageTemplate.Execute(w, d)
}

// localTime formats t for the recipient: their zone, their language.
func localTime(t time.Time, zone, locale string) string {
	if t.IsZero() {
		return ""
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		loc = time.UTC
	}
	return templates.FormatTime(t.In(loc), locale)
}

var ackPageTemplate = template.Must(template.New("ack").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.Title}}</title>
</head>
<body style="margin:0;padding:16px;color:#0b0c0c;background:#ffffff;font-family:Arial,Helvetica,sans-serif;font-size:19px;line-height:1.5;">
<main style="max-width:640px;margin:0 auto;">
{{range .Parts}}<div lang="{{.Lang}}" style="margin:0 0 32px;">
<h1 style="font-size:32px;margin:0 0 16px;">{{.Heading}}</h1>
{{with .Subject}}<blockquote style="margin:0 0 16px;padding:8px 16px;border-left:5px solid #b1b4b6;">{{.}}</blockquote>
{{end}}{{range .Paras}}<p style="margin:0 0 16px;">{{.}}</p>
{{end}}{{with .Button}}<form method="post">
<button type="submit" style="font-size:19px;padding:8px 16px;border:0;border-bottom:2px solid #002d18;background:#00703c;color:#ffffff;cursor:pointer;">{{.}}</button>
</form>
{{end}}</div>
{{end}}</main>
</body>
</html>
`))

// ackWords is one page in one language.
func ackWords(locale string, which int, t store.AckLinkTarget) ackPagePart {
	at := func(v time.Time) string { return localTime(v, t.TimeZone, locale) }
	cy := locale == "cy"
	p := ackPagePart{Lang: locale}
	pick := func(en, welsh string) string {
		if cy {
			return welsh
		}
		return en
	}
	switch which {
	case pageConfirm:
		p.Heading = pick("Acknowledge this message", "Cydnabod y neges hon")
		p.Subject = t.Subject
		ask := pick("Please confirm that you have received and read this message.", "Cadarnhewch eich bod wedi cael a darllen y neges hon.")
		if t.Name != "" {
			ask = t.Name + ": " + pick("please confirm that you have received and read this message.", "cadarnhewch eich bod wedi cael a darllen y neges hon.")
		}
		p.Paras = append(p.Paras, ask)
		if s := at(t.SentAt); s != "" {
			p.Paras = append(p.Paras, pick("Sent: ", "Anfonwyd: ")+s+".")
		}
		if s := at(t.DueAt); s != "" {
			p.Paras = append(p.Paras, pick("Please acknowledge by ", "Cydnabyddwch erbyn ")+s+".")
		}
		p.Paras = append(p.Paras, pick("Opening this page has not acknowledged anything: only the button below does.",
			"Nid yw agor y dudalen hon wedi cydnabod dim: dim ond y botwm isod sy'n gwneud hynny."))
		p.Button = pick("Confirm acknowledgement", "Cadarnhau'r gydnabyddiaeth")
	case pageDone:
		p.Heading = pick("Acknowledged", "Wedi cydnabod")
		p.Subject = t.Subject
		p.Paras = []string{pick("Thank you. Your acknowledgement was recorded at ", "Diolch. Cofnodwyd eich cydnabyddiaeth am ") + at(t.AckedAt) + ".",
			pick("You can close this page.", "Gallwch gau'r dudalen hon.")}
	case pageAlready:
		p.Heading = pick("Already acknowledged", "Wedi'i chydnabod eisoes")
		p.Subject = t.Subject
		p.Paras = []string{pick("This message was acknowledged at ", "Cafodd y neges hon ei chydnabod am ") + at(t.AckedAt) + viaWords(t.AckVia, cy) + ".",
			pick("Nothing more is needed.", "Nid oes angen gwneud dim mwy.")}
	case pageExpired:
		p.Heading = pick("This link has expired", "Mae'r ddolen hon wedi dod i ben")
		p.Paras = []string{pick("Acknowledgement links work for a limited time, and this one has run out. Nothing was recorded.",
			"Dim ond am gyfnod cyfyngedig y mae dolenni cydnabod yn gweithio, ac mae'r un hon wedi dod i ben. Ni chofnodwyd dim."),
			pick("If you still need to acknowledge, reply ACK to the text message, or contact the incident team.",
				"Os oes angen i chi gydnabod o hyd, atebwch ACK i'r neges destun, neu cysylltwch â'r tîm digwyddiadau.")}
	case pageInvalid:
		p.Heading = pick("This link is not valid", "Nid yw'r ddolen hon yn ddilys")
		p.Paras = []string{pick("The link is incomplete or has been changed, so nothing was recorded.",
			"Mae'r ddolen yn anghyflawn neu wedi'i newid, felly ni chofnodwyd dim."),
			pick("Open it again from the email (copy the whole link), or contact the incident team.",
				"Agorwch hi eto o'r e-bost (copïwch y ddolen gyfan), neu cysylltwch â'r tîm digwyddiadau.")}
	case pageNotFound:
		p.Heading = pick("Nothing to acknowledge", "Dim i'w gydnabod")
		p.Paras = []string{pick("This link does not match any message that asks for acknowledgement. Nothing was recorded.",
			"Nid yw'r ddolen hon yn cyfateb i unrhyw neges sy'n gofyn am gydnabyddiaeth. Ni chofnodwyd dim.")}
	default:
		p.Heading = pick("Something went wrong", "Aeth rhywbeth o'i le")
		p.Paras = []string{pick("Your acknowledgement could not be recorded. Please try again in a minute, or contact the incident team.",
			"Nid oedd modd cofnodi eich cydnabyddiaeth. Rhowch gynnig arall arni ymhen munud, neu cysylltwch â'r tîm digwyddiadau.")}
	}
	return p
}

// viaWords says how an acknowledgement was made, for the page.
func viaWords(via string, cy bool) string {
	en := map[string]string{"sms": " (by SMS reply)", "email": " (by the email link)", "slack": " (in Slack)"}
	welsh := map[string]string{"sms": " (drwy ateb SMS)", "email": " (drwy'r ddolen e-bost)", "slack": " (yn Slack)"}
	if cy {
		return welsh[via]
	}
	return en[via]
}
