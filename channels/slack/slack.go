package slack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
)

// MetadataEventType is the Slack message-metadata event type crier attaches
// to every message it posts, so a Slack app or an audit can tell crier's
// messages apart and find their delivery.
const MetadataEventType = "crier_delivery"

// Sender is one Slack channel instance. It is safe for concurrent use.
type Sender struct {
	name    string
	api     *slack.Client // nil in webhook mode
	hc      *http.Client
	webhook string // the incoming-webhook URL; a credential
	secrets []string
	perDest rate.Limit
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // one per Slack channel, created lazily
}

var _ channels.Channel = (*Sender)(nil)

// Option changes how New builds a Sender; options are test seams and wiring.
type Option func(*options)

type options struct {
	hc  *http.Client
	log *slog.Logger
	now func() time.Time
}

// WithHTTPClient makes the Sender use c (a copy of it, given the config's
// timeout when c has none and no redirects when c has no policy).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.hc = c } }

// WithLogger sets where the Sender reports problems that are not failed
// deliveries, such as a parent message that could not be edited.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock used for the "updated" time on parent messages.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New builds a Sender named name (the instance name shown in the delivery
// log) from c. It applies the defaults, reads token_file or
// webhook_url_file when the secret itself is empty, and validates.
func New(name string, c Config, opts ...Option) (*Sender, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c.Defaults()
	if err := readSecretFile(&c.Token, c.TokenFile, "token_file"); err != nil {
		return nil, fmt.Errorf("slack channel %q: %w", name, err)
	}
	if err := readSecretFile(&c.WebhookURL, c.WebhookURLFile, "webhook_url_file"); err != nil {
		return nil, fmt.Errorf("slack channel %q: %w", name, err)
	}
	if l := c.Validate(); len(l) > 0 {
		return nil, fmt.Errorf("slack channel %q: %w", name, l.Err())
	}

	hc := &http.Client{}
	if o.hc != nil {
		cp := *o.hc
		hc = &cp
	}
	if hc.Timeout == 0 {
		hc.Timeout = c.Timeout // slack-go's default client has none
	}
	if hc.CheckRedirect == nil {
		// A redirect would re-send the form, token included, to wherever it
		// points; Slack's API does not redirect, so refuse.
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}

	s := &Sender{
		name:     name,
		hc:       hc,
		webhook:  c.WebhookURL.Reveal(),
		secrets:  secretForms(c.Token.Reveal(), c.WebhookURL.Reveal()),
		perDest:  rate.Limit(c.PerDestination),
		log:      o.log,
		now:      o.now,
		limiters: make(map[string]*rate.Limiter),
	}
	if s.webhook == "" {
		// No slack.OptionRetry: the dispatcher alone retries, durably.
		s.api = slack.New(c.Token.Reveal(), slack.OptionAPIURL(c.APIURL), slack.OptionHTTPClient(hc))
	}
	return s, nil
}

// readSecretFile fills an empty secret from file (trimmed), the way the
// config loader would.
func readSecretFile(sec *fields.Secret, file, key string) error {
	if sec.IsSet() || file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	*sec = fields.Secret(strings.TrimSpace(string(b)))
	return nil
}

// Name returns the instance name from config.
func (s *Sender) Name() string { return s.name }

// Kind returns channels.KindSlack.
func (s *Sender) Kind() channels.Kind { return channels.KindSlack }

// Wait blocks until m's Slack channel may receive another message (at most
// per_destination_rate a second, burst 1), or ctx ends. The dispatcher
// calls it before Send; Send itself never sleeps. In webhook mode every
// message goes to the webhook's one channel, so all share one limiter.
func (s *Sender) Wait(ctx context.Context, m channels.Message) error {
	key, what := m.Address, m.Address
	if s.api == nil {
		key, what = "", "webhook"
	}
	if err := s.limiter(key).Wait(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("slack: pacing %s: %w", what, cerr)
		}
		// The limiter refuses up front when the wait would outlast ctx's
		// deadline; say so in the form callers test for.
		return fmt.Errorf("slack: pacing %s: %v: %w", what, err, context.DeadlineExceeded)
	}
	return nil
}

func (s *Sender) limiter(key string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[key]
	if !ok {
		l = rate.NewLimiter(s.perDest, 1)
		s.limiters[key] = l
	}
	return l
}

// Send posts m once. With a token: to the channel m.Address, into the
// thread m.Thread when set (then editing the parent to show
// m.ThreadSummary); Receipt.ProviderID is "<channel>/<ts>" and
// Receipt.Thread the parent's reference, or the reply's own when that
// edit found the parent deleted (the reply is then the new parent). With
// a webhook: to the webhook's fixed channel, unthreaded; ProviderID
// "webhook", Thread "". Every error is classified and free of
// credentials.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	if strings.TrimSpace(m.Subject) == "" && strings.TrimSpace(m.Text) == "" {
		return channels.Receipt{}, channels.Permanent(channels.ReasonRejected, "no_text",
			fmt.Errorf("slack: delivery %s has neither subject nor text", m.Key))
	}
	lay, err := messageLayout(m)
	if err != nil {
		return channels.Receipt{}, channels.Permanent(channels.ReasonRejected, "msg_too_long", fmt.Errorf("slack: %w", err))
	}
	if s.api == nil {
		return s.sendWebhook(ctx, lay)
	}
	if m.Address == "" {
		return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "",
			fmt.Errorf("slack: delivery %s has no Slack channel ID", m.Key))
	}
	return s.post(ctx, m, lay)
}

// threadRef is a parsed "<channel>/<ts>" reference.
type threadRef struct{ channel, ts string }

func parseThread(ref string) (threadRef, bool) {
	ch, ts, ok := strings.Cut(ref, "/")
	if !ok || ch == "" || ts == "" || strings.Contains(ts, "/") {
		return threadRef{}, false
	}
	return threadRef{ch, ts}, true
}

func (s *Sender) post(ctx context.Context, m channels.Message, lay layout) (channels.Receipt, error) {
	opts := []slack.MsgOption{
		slack.MsgOptionText(lay.fallback, false), // already escaped where needed
		slack.MsgOptionBlocks(lay.blocks...),
		slack.MsgOptionMetadata(metadata(m)),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
	parent, threaded := parseThread(m.Thread)
	if m.Thread != "" && !threaded {
		// Losing the message is worse than losing the thread: post it as a
		// new parent, which later messages then thread under.
		s.log.WarnContext(ctx, "slack thread reference unusable; posting a new parent",
			"channel", s.name, "destination", m.Address, "delivery_key", m.Key, "thread", m.Thread)
	}
	if threaded {
		// Post to m.Address, not the reference's channel: the address may
		// be a name where the reference holds the ID.
		opts = append(opts, slack.MsgOptionTS(parent.ts))
	}
	ch, ts, msg, err := s.api.PostMessageWithResponseContext(ctx, m.Address, opts...)
	if err != nil {
		return channels.Receipt{}, s.classify("chat.postMessage to "+m.Address, err, false)
	}
	if ch == "" {
		ch = m.Address
	}
	rec := channels.Receipt{ProviderID: ch, Status: "ok"}
	if ts == "" {
		// Posted, but Slack named no ts: nothing to thread under or edit
		// later. A retry would post twice, so report success.
		s.log.WarnContext(ctx, "slack accepted a message without a ts; it cannot be threaded under or edited",
			"channel", s.name, "destination", ch, "delivery_key", m.Key)
	} else {
		rec.ProviderID = ch + "/" + ts
		rec.Thread = rec.ProviderID
	}
	if !threaded {
		return rec, nil
	}
	// A reply stays in its thread unless Slack says the parent is gone.
	// Its answer is no evidence either way: Slack posts a reply to a
	// deleted parent at the top of the channel and answers ok, without
	// thread_ts, but a Slack-compatible server (or a proxy) may leave
	// thread_ts, or the whole message, out of any answer.
	own := rec.Thread
	rec.Thread = m.Thread
	if m.ThreadSummary == "" {
		return rec, nil
	}
	err = s.updateParent(ctx, parent, m)
	if err == nil {
		return rec, nil
	}
	reason, _, _ := channels.Classify(err)
	if parentGone(err) && own != "" && msg.ThreadTimestamp == "" {
		// chat.update says the parent no longer exists, and nothing shows
		// the reply in a thread: it is at the top of the channel, and
		// becomes the parent that later messages thread under.
		s.log.WarnContext(ctx, "slack thread parent gone; the reply became a new parent",
			"channel", s.name, "destination", ch, "delivery_key", m.Key, "thread", m.Thread, "new_thread", own,
			"code", channels.Code(err))
		rec.Thread = own
		return rec, nil
	}
	// The reply is posted: a failed edit is logged, not returned, since
	// retrying the delivery would post the reply twice. A parent deleted
	// after it had replies stays as a placeholder that keeps its thread
	// (the answer shows the reply in it) but cannot be edited.
	s.log.WarnContext(ctx, "slack parent update failed; the reply was posted",
		"channel", s.name, "destination", parent.channel, "delivery_key", m.Key, "thread", m.Thread,
		"reason", string(reason), "code", channels.Code(err), "error", err.Error())
	return rec, nil
}

// updateParent edits the thread's parent to show the current status and
// returns the classified failure, if any.
func (s *Sender) updateParent(ctx context.Context, parent threadRef, m channels.Message) error {
	sum := summaryLayout(m.ThreadSummary, m.Key, s.now())
	_, _, _, err := s.api.UpdateMessageContext(ctx, parent.channel, parent.ts,
		slack.MsgOptionText(sum.fallback, false), slack.MsgOptionBlocks(sum.blocks...))
	if err != nil {
		return s.classify("chat.update of "+parent.channel+"/"+parent.ts, err, false)
	}
	return nil
}

// parentGone reports whether a chat.update failure says the message does
// not exist: Slack's message_not_found ("No message exists with the
// requested timestamp"). Other refusals (cant_update_message,
// edit_window_closed, ...) leave the parent where it is.
func parentGone(err error) bool { return channels.Code(err) == "message_not_found" }

func (s *Sender) sendWebhook(ctx context.Context, lay layout) (channels.Receipt, error) {
	off := false
	err := slack.PostWebhookCustomHTTPContext(ctx, s.webhook, s.hc, &slack.WebhookMessage{
		Text:        lay.fallback,
		Blocks:      &slack.Blocks{BlockSet: lay.blocks},
		UnfurlLinks: &off,
		UnfurlMedia: &off,
	})
	if err != nil {
		return channels.Receipt{}, s.classify("webhook post", err, true)
	}
	// An incoming webhook returns no ts: nothing to thread under or edit.
	return channels.Receipt{ProviderID: "webhook", Status: "ok"}, nil
}

// metadata is the Slack message metadata crier attaches: the delivery key,
// the incident and the delivery id, plus the message's own metadata.
func metadata(m channels.Message) slack.SlackMetadata {
	p := make(map[string]any, len(m.Metadata)+3)
	for k, v := range m.Metadata {
		p[k] = v
	}
	p["delivery_key"] = m.Key
	if m.IncidentID != "" {
		p["incident_id"] = m.IncidentID
	}
	if m.DeliveryID != 0 {
		p["delivery_id"] = m.DeliveryID
	}
	return slack.SlackMetadata{EventType: MetadataEventType, EventPayload: p}
}
