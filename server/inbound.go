package server

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/crier-dev/crier/store"
)

// Two-way SMS: what a recipient texts back. Only a single word counts as a
// keyword (as with Twilio's own opt-out handling), in any case and with
// surrounding punctuation ignored, so "Stop." stops but "please stop
// texting the ward" is an unknown reply that a person can read in the log.

// smsKeywords maps a reply's single word to its action. INFO is a help
// keyword for Twilio too.
var smsKeywords = map[string]string{
	"STOP": store.InboundStop, "STOPALL": store.InboundStop, "UNSUBSCRIBE": store.InboundStop,
	"CANCEL": store.InboundStop, "END": store.InboundStop, "QUIT": store.InboundStop,
	"START": store.InboundStart, "UNSTOP": store.InboundStart, "YES": store.InboundStart,
	"HELP": store.InboundHelp, "INFO": store.InboundHelp,
	"ACK": store.InboundAck,
}

// SMSCommand is what a reply asks for: an action and, for "ACK <ref>", the
// reference (an incident id or a delivery id).
type SMSCommand struct {
	Action string
	Ref    string
}

// ParseSMSReply reads a reply body. ackDigit, when not empty, is a
// one-character reply that also means ACK.
func ParseSMSReply(body, ackDigit string) SMSCommand {
	words := strings.Fields(body)
	for i, w := range words {
		words[i] = strings.ToUpper(strings.TrimFunc(w, trimmable))
	}
	words = dropEmpty(words)
	switch {
	case len(words) == 1 && ackDigit != "" && words[0] == strings.ToUpper(ackDigit):
		return SMSCommand{Action: store.InboundAck}
	case len(words) == 1:
		if a, ok := smsKeywords[words[0]]; ok {
			return SMSCommand{Action: a}
		}
	case len(words) == 2 && words[0] == "ACK":
		return SMSCommand{Action: store.InboundAck, Ref: words[1]}
	}
	return SMSCommand{Action: store.InboundUnknown}
}

// trimmable is what surrounds a keyword without changing it.
func trimmable(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.Is(unicode.Cf, r)
}

func dropEmpty(words []string) []string {
	out := words[:0]
	for _, w := range words {
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// inbound handles one received SMS: it records it, acts on it and answers
// with TwiML.
func (h *twilioHooks) inbound(w http.ResponseWriter, r *http.Request) {
	form, ok := h.verify(w, r, TwilioInboundPath)
	if !ok {
		return
	}
	ctx := r.Context()
	from, to, body := form.Get("From"), form.Get("To"), form.Get("Body")
	in := store.Inbound{From: from, To: to, Body: body, ProviderID: first(form.Get("MessageSid"), form.Get("SmsSid")),
		Scope: first(form.Get("MessagingServiceSid"), to)}
	if from == "" {
		h.s.observe(TwilioInboundPath, "bad_request")
		http.Error(w, "no From number", http.StatusBadRequest)
		return
	}
	cmd := ParseSMSReply(body, h.o.Replies.AckDigit)
	in.Action = cmd.Action
	known, err := h.o.Store.KnownAddress(ctx, "sms", from)
	if err != nil {
		h.fail(w, TwilioInboundPath, err)
		return
	}
	var reply string
	outcome := cmd.Action
	switch cmd.Action {
	case store.InboundStop, store.InboundStart:
		// Twilio's own opt-out handling may answer as well: keep quiet.
	case store.InboundHelp:
		reply = h.o.Replies.HelpText
	case store.InboundAck:
		reply, outcome, err = h.ack(r, &in, cmd.Ref)
		if err != nil {
			h.fail(w, TwilioInboundPath, err)
			return
		}
	default:
		reply = h.o.Replies.UnknownText
	}
	res, err := h.o.Store.RecordInbound(ctx, in)
	if err != nil {
		h.fail(w, TwilioInboundPath, err)
		return
	}
	h.s.observe(TwilioInboundPath, outcome)
	h.s.o.Log.Info("sms reply", "action", in.Action, "outcome", outcome, "known_number", known, "phone", from, "to", to,
		"delivery", in.DeliveryID, "opt_outs_changed", res.OptOuts, "inbound_id", res.ID)
	writeTwiML(w, reply)
}

// ack acknowledges what an ACK reply refers to and returns the answer.
// Nothing to acknowledge (a stranger's number, a wrong reference) is an
// answer, not an error.
func (h *twilioHooks) ack(r *http.Request, in *store.Inbound, ref string) (reply, outcome string, err error) {
	ctx := r.Context()
	target, err := h.o.Store.AckableByRef(ctx, "sms", in.From, ref)
	if errors.Is(err, store.ErrNotFound) {
		if ref != "" {
			return "There is nothing to acknowledge for " + ref + " from this number.", "ack_none", nil
		}
		return "There is nothing to acknowledge from this number.", "ack_none", nil
	}
	if err != nil {
		return "", "", err
	}
	res, err := h.o.Store.RecordAck(ctx, target.DeliveryID, "sms", "SMS reply: "+truncate(in.Body, 60))
	if err != nil {
		return "", "", err
	}
	in.DeliveryID = target.DeliveryID
	at := res.At
	if loc, lerr := time.LoadLocation(target.TimeZone); lerr == nil && target.TimeZone != "" {
		at = at.In(loc)
	}
	what := "your alert"
	if target.IncidentID != "" {
		what = target.IncidentID
	}
	if !res.Recorded {
		return "Already acknowledged " + what + " at " + at.Format("15:04") + ". Thank you.", "ack_again", nil
	}
	return "Acknowledged " + what + " at " + at.Format("15:04") + ". Thank you.", "ack", nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// writeTwiML answers with a TwiML message, or an empty response.
func writeTwiML(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if msg == "" {
		w.Write([]byte(xml.Header + "<Response/>\n"))
		return
	}
	var b strings.Builder
	b.WriteString(xml.Header + "<Response><Message>")
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message></Response>\n")
	w.Write([]byte(b.String()))
}
