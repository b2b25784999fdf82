package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// AckPolicy asks the recipients of a trigger to acknowledge it, and says
// how to escalate when they do not.
type AckPolicy struct {
	// Within is how long recipients have to acknowledge; each escalation
	// rung gets the same time again.
	Within time.Duration
	// Quorum is how many acknowledgements are enough; 0 means everyone.
	Quorum int
	// Ladder is the channel instances to escalate along, in order.
	Ladder []string
	// Deputy is the audience told (once) when a recipient's ladder is
	// used up without an acknowledgement; "" for none.
	Deputy string
}

// Errors Verify returns; the server answers each with its own page.
var (
	// ErrAckTokenInvalid means the token was altered, truncated, made for
	// another purpose or signed with another secret.
	ErrAckTokenInvalid = errors.New("acknowledgement token is not valid")
	// ErrAckTokenExpired means the token is genuine but too old.
	ErrAckTokenExpired = errors.New("acknowledgement token has expired")
)

// AckClaim is what an acknowledgement token vouches for: one person's
// acknowledgement of one trigger (the form put in email links at plan
// time, when delivery ids are not known yet), or of one delivery (the
// form a Slack button carries, made at send time), until Expires.
type AckClaim struct {
	TriggerID    int64
	SubscriberID string
	DeliveryID   int64
	Expires      time.Time
}

// AckSigner makes and checks acknowledgement tokens and links. A token is
// base64url(payload ‖ HMAC-SHA256(secret, purpose ‖ payload)[:16]); the
// purpose string makes it single-purpose (nothing else crier signs with
// the same secret verifies as an acknowledgement).
type AckSigner struct {
	secret []byte
	ttl    time.Duration
	base   string // public URL without a trailing slash; "" means no links
}

// ackPurpose is mixed into every MAC; bump the version to retire every
// token issued before a format change.
const ackPurpose = "crier acknowledgement v1\x00"

// ackMACLen is the kept part of the HMAC: 128 bits is beyond guessing.
const ackMACLen = 16

// NewAckSigner builds a signer. secret is webhooks.ack_secret; ttl how
// long a token works (webhooks.ack_link_ttl); publicURL the server's
// public base URL, under which links point at /ack/{token} ("" makes
// tokens for Slack buttons only, no links).
func NewAckSigner(secret string, ttl time.Duration, publicURL string) *AckSigner {
	return &AckSigner{secret: []byte(secret), ttl: ttl, base: strings.TrimRight(publicURL, "/")}
}

// TTL is how long the tokens this signer makes work.
func (a *AckSigner) TTL() time.Duration { return a.ttl }

// Token signs c.
func (a *AckSigner) Token(c AckClaim) string {
	b := []byte{1}
	if c.DeliveryID != 0 {
		b = append(b, 'd')
		b = binary.AppendUvarint(b, uint64(c.Expires.Unix()))
		b = binary.AppendUvarint(b, uint64(c.DeliveryID))
	} else {
		b = append(b, 't')
		b = binary.AppendUvarint(b, uint64(c.Expires.Unix()))
		b = binary.AppendUvarint(b, uint64(c.TriggerID))
		b = append(b, c.SubscriberID...)
	}
	return base64.RawURLEncoding.EncodeToString(append(b, a.mac(b)...))
}

func (a *AckSigner) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(ackPurpose))
	m.Write(payload)
	return m.Sum(nil)[:ackMACLen]
}

// URL is the acknowledgement link for token, or "" without a public URL.
func (a *AckSigner) URL(token string) string {
	if a.base == "" {
		return ""
	}
	return a.base + "/ack/" + token
}

// Verify checks token's signature first and its expiry second, so an
// altered expiry is ErrAckTokenInvalid, never ErrAckTokenExpired.
func (a *AckSigner) Verify(token string, now time.Time) (AckClaim, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 2+ackMACLen {
		return AckClaim{}, ErrAckTokenInvalid
	}
	payload, sum := raw[:len(raw)-ackMACLen], raw[len(raw)-ackMACLen:]
	if !hmac.Equal(sum, a.mac(payload)) {
		return AckClaim{}, ErrAckTokenInvalid
	}
	c, ok := parseAckPayload(payload)
	if !ok {
		return AckClaim{}, ErrAckTokenInvalid
	}
	if !now.Before(c.Expires) {
		return c, ErrAckTokenExpired
	}
	return c, nil
}

// parseAckPayload decodes a payload whose signature has been checked.
func parseAckPayload(b []byte) (AckClaim, bool) {
	var c AckClaim
	if len(b) < 2 || b[0] != 1 {
		return c, false
	}
	form, rest := b[1], b[2:]
	exp, n := binary.Uvarint(rest)
	if n <= 0 {
		return c, false
	}
	rest = rest[n:]
	c.Expires = time.Unix(int64(exp), 0).UTC()
	id, n := binary.Uvarint(rest)
	if n <= 0 || id == 0 {
		return c, false
	}
	rest = rest[n:]
	switch form {
	case 'd':
		c.DeliveryID = int64(id)
		return c, len(rest) == 0
	case 't':
		c.TriggerID, c.SubscriberID = int64(id), string(rest)
		return c, c.SubscriberID != ""
	}
	return c, false
}

// fillAck adds the acknowledgement request to one recipient's template
// data: the deadline in their zone and language, the reply word, and
// their own signed link (expiring ttl after now).
func (p *Planner) fillAck(d *templates.Data, req Request, s *subscribers.Subscriber, loc *time.Location, now time.Time) {
	if req.Ack == nil {
		return
	}
	due := req.ackDue
	if due.IsZero() {
		due = now.Add(req.Ack.Within) // a preview or pre-flight: as if planned now
	}
	d.AckRequired = true
	d.AckByAt = due.In(loc)
	d.AckBy = templates.FormatTime(d.AckByAt, s.Locale)
	d.AckReply = templates.AckReply(s.Locale)
	if p.acks != nil && req.triggerID != 0 {
		d.AckURL = p.acks.URL(p.acks.Token(AckClaim{TriggerID: req.triggerID, SubscriberID: s.ID, Expires: now.Add(p.acks.TTL())}))
	}
}

// personal reports whether the message for d must be rendered for its
// recipient alone: a link signed for one person makes it so, but only
// when there is one.
func (p *Planner) personal(event string, kind channels.Kind, locale string, d *templates.Data) bool {
	if d.AckURL != "" {
		return p.tmpl.Personal(event, kind, locale)
	}
	return p.tmpl.PersonalWithoutAckURL(event, kind, locale)
}

// checkAck reports what is wrong with a request's acknowledgement policy.
func (p *Planner) checkAck(a *AckPolicy) []string {
	if a == nil {
		return nil
	}
	var errs []string
	if a.Within <= 0 {
		errs = append(errs, "the acknowledgement time limit must be positive")
	}
	if a.Quorum < 0 {
		errs = append(errs, "the acknowledgement quorum must be 0 (everyone) or more")
	}
	for _, c := range a.Ladder {
		if _, ok := p.kinds[c]; !ok {
			errs = append(errs, fmt.Sprintf("escalation channel %q is not defined in the config", c))
		}
	}
	if _, ok := p.audiences[a.Deputy]; a.Deputy != "" && !ok {
		errs = append(errs, fmt.Sprintf("deputy audience %q is not defined in the config", a.Deputy))
	}
	return errs
}

// AckAsker is what AckButtons needs of the store: whether a delivery asks
// for acknowledgement, and when it was planned.
type AckAsker interface {
	DeliveryAsksAck(ctx context.Context, id int64) (bool, time.Time, error)
}

// AckButtons wraps a channel (Slack) so that every message asking for
// acknowledgement carries what the channel needs to show an Acknowledge
// button: Metadata["ack_token"], a token for the delivery itself that the
// interaction webhook verifies, when interactive is true (a Slack signing
// secret is configured); otherwise Metadata["ack_url"], the link to the
// confirm page, when links can be made. The token is made at send time
// from the delivery id, expiring the signer's TTL after the delivery was
// planned, so a retry carries the same token.
func AckButtons(ch channels.Channel, st AckAsker, signer *AckSigner, interactive bool) channels.Channel {
	return &ackButtons{Channel: ch, st: st, signer: signer, interactive: interactive}
}

type ackButtons struct {
	channels.Channel
	st          AckAsker
	signer      *AckSigner
	interactive bool
}

var (
	_ channels.Channel = (*ackButtons)(nil)
	_ Pacer            = (*ackButtons)(nil)
)

// Send adds the button's metadata when the delivery asks for it. A failed
// lookup sends the message without a button rather than not at all.
func (b *ackButtons) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	if m.DeliveryID != 0 {
		if asks, planned, err := b.st.DeliveryAsksAck(ctx, m.DeliveryID); err == nil && asks {
			token := b.signer.Token(AckClaim{DeliveryID: m.DeliveryID, Expires: planned.Add(b.signer.TTL())})
			md := make(map[string]string, len(m.Metadata)+1)
			for k, v := range m.Metadata {
				md[k] = v
			}
			if b.interactive {
				md["ack_token"] = token
			} else if u := b.signer.URL(token); u != "" {
				md["ack_url"] = u
			}
			m.Metadata = md
		}
	}
	return b.Channel.Send(ctx, m)
}

// Wait passes pacing through to the wrapped channel, if it paces.
func (b *ackButtons) Wait(ctx context.Context, m channels.Message) error {
	if p, ok := b.Channel.(Pacer); ok {
		return p.Wait(ctx, m)
	}
	return nil
}

// ackLinePrefixes start the lines in which the default templates ask for
// acknowledgement, in every locale and kind.
func ackLinePrefixes() []string {
	var out []string
	for _, l := range templates.Locales() {
		out = append(out, templates.AckReply(l))
	}
	return append(out, "*Acknowledgement required", "*Angen cydnabyddiaeth", "ACTION REQUIRED:", "ANGEN GWEITHREDU:", "Acknowledge:", "Cydnabod:")
}

// stripAckLines removes the request to acknowledge from a message reused
// as the body of another (the new message asks in its own channel's way),
// and every line with an acknowledgement link in it, whatever the
// template: a link is one person's, and must not be passed on.
func stripAckLines(text string) string {
	lines := strings.Split(text, "\n")
	kept := lines[:0]
	for _, l := range lines {
		t := strings.TrimSpace(l)
		drop := strings.Contains(t, "/ack/")
		for _, p := range ackLinePrefixes() {
			drop = drop || strings.HasPrefix(t, p)
		}
		if !drop {
			kept = append(kept, l)
		}
	}
	return strings.TrimSpace(strings.Join(kept, "\n"))
}

// ackTokenStore is the store's side of the signer, for AckButtons.
var _ AckAsker = (*store.Store)(nil)
