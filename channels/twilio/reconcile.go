package twilio

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/crier-dev/crier/channels"
)

var _ channels.Reconciler = (*Sender)(nil)

const (
	// reconcilePageSize messages a page, at most reconcilePages pages:
	// newest first, the message looked for is among the first few.
	reconcilePageSize = 50
	reconcilePages    = 4
	// clockSkew allows for Twilio's clock and crier's differing: a
	// message created this much before the request started may still be
	// the one it created.
	clockSkew = 2 * time.Minute
	// listTimeout bounds one page of the message list.
	listTimeout = 30 * time.Second
)

// Reconcile looks in Twilio's own record of messages for one crier may
// have sent (a request that timed out, or was under way when crier
// stopped): Messages to the address (and from the configured sender),
// newest first, created since the request started, with the same text and
// a SID no other delivery has. Matching goes by text because the list
// does not carry the status callback URL that names the delivery.
//
// It decides nothing from a field Twilio (or a service speaking its API)
// might leave out: a message without a creation date is judged by its
// text alone, and one listed without its text makes the answer undecided
// rather than "not there".
func (s *Sender) Reconcile(ctx context.Context, q channels.Query) (channels.Reconciliation, error) {
	if strings.TrimSpace(q.Address) == "" {
		return channels.Reconciliation{Undecided: true, Detail: "no phone number to look for"}, nil
	}
	var pageToken, page string
	listed, textless := 0, 0
	for range reconcilePages {
		a := &attempt{ctx: ctx, base: s.base, next: s.rt}
		p := &api.ListMessageParams{}
		p.SetTo(q.Address)
		if s.from != "" {
			p.SetFrom(s.from)
		}
		p.SetPageSize(reconcilePageSize)
		// A list request creates nothing, so it may wait longer than a
		// send: a provider slow enough to time sends out is still asked.
		resp, err := s.service(a, max(s.timeout, listTimeout)).PageMessage(p, pageToken, page)
		if err != nil || a.status < 200 || a.status > 299 || resp == nil {
			return channels.Reconciliation{}, s.listError(a, err)
		}
		older := false
		for _, m := range resp.Messages {
			if m.Sid == nil || *m.Sid == "" {
				continue
			}
			listed++
			if created, ok := twilioTime(m.DateCreated); ok && created.Before(q.Since.Add(-clockSkew)) {
				older = true // from before the request: not this one
				continue
			}
			if s.msgService != "" && m.MessagingServiceSid != nil && *m.MessagingServiceSid != "" && *m.MessagingServiceSid != s.msgService {
				continue
			}
			if m.Body == nil {
				textless++
				continue
			}
			if !sameText(*m.Body, q.Text) {
				continue
			}
			if q.Taken != nil {
				taken, err := q.Taken(*m.Sid)
				if err != nil {
					return channels.Reconciliation{}, err
				}
				if taken {
					continue // another delivery's copy of the same text
				}
			}
			r := channels.Receipt{ProviderID: *m.Sid}
			if m.Status != nil {
				r.Status = *m.Status
			}
			if m.NumSegments != nil {
				r.Segments, _ = strconv.Atoi(*m.NumSegments)
			}
			if m.ErrorCode != nil && *m.ErrorCode != 0 {
				r.ErrorCode = strconv.Itoa(*m.ErrorCode)
			}
			return channels.Reconciliation{Found: true, Receipt: r, Detail: fmt.Sprintf("found among %d listed", listed)}, nil
		}
		next := ""
		if resp.NextPageUri != nil {
			next = *resp.NextPageUri
		}
		if older || next == "" {
			return s.notFound(listed, textless, false), nil
		}
		u, err := url.Parse(next)
		if err != nil {
			return channels.Reconciliation{Undecided: true, Detail: "Twilio's next page could not be read"}, nil
		}
		pageToken, page = u.Query().Get("PageToken"), u.Query().Get("Page")
		if pageToken == "" && page == "" {
			return channels.Reconciliation{Undecided: true, Detail: "Twilio's next page could not be read"}, nil
		}
	}
	return s.notFound(listed, textless, true), nil
}

func (s *Sender) notFound(listed, textless int, more bool) channels.Reconciliation {
	switch {
	case textless > 0:
		return channels.Reconciliation{Undecided: true,
			Detail: fmt.Sprintf("%d of the %d messages Twilio listed to the number came without their text", textless, listed)}
	case more:
		return channels.Reconciliation{Undecided: true,
			Detail: fmt.Sprintf("Twilio listed more than %d messages to the number since the request; not all were looked at", listed)}
	}
	return channels.Reconciliation{Detail: fmt.Sprintf("Twilio listed %d messages to the number, none with this text since the request", listed)}
}

// listError describes a failed list request without any credential.
func (s *Sender) listError(a *attempt, err error) error {
	if a.status != 0 {
		return fmt.Errorf("twilio: list messages: HTTP %d", a.status)
	}
	msg := "no response"
	if err != nil {
		msg = err.Error()
		for _, sec := range s.secrets {
			msg = strings.ReplaceAll(msg, sec, "<secret>")
		}
	}
	return fmt.Errorf("twilio: list messages: %s", msg)
}

// twilioTime parses Twilio's RFC 2822 dates ("Mon, 16 Aug 2010 03:45:01 +0000").
func twilioTime(v *string) (time.Time, bool) {
	if v == nil || *v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, time.RFC3339} {
		if t, err := time.Parse(layout, *v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// trialPrefix is what Twilio puts before every message from a trial account.
const trialPrefix = "Sent from your Twilio trial account - "

// sameText reports whether a body Twilio lists is the text crier sent:
// the same once line ends and outer spaces are tidied and the characters
// Twilio's Smart Encoding replaces (curly quotes, dashes, ellipsis,
// non-breaking spaces) are folded, allowing for a trial account's prefix.
func sameText(listed, sent string) bool {
	l, s := foldText(listed), foldText(sent)
	return l == s || l == foldText(trialPrefix+sent)
}

var smartEncoding = strings.NewReplacer(
	"\r\n", "\n", "\r", "\n",
	"\u2018", "'", "\u2019", "'", "\u201a", "'", "\u201b", "'",
	"\u201c", `"`, "\u201d", `"`, "\u201e", `"`,
	"\u2013", "-", "\u2014", "-", "\u2026", "...",
	"\u00a0", " ", "\u2009", " ", "\u202f", " ",
)

func foldText(s string) string { return strings.TrimSpace(smartEncoding.Replace(s)) }
