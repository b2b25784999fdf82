// Package twilio is crier's SMS channel: one message, one POST to Twilio's
// Messages API through github.com/twilio/twilio-go, with every failure
// classified for the dispatcher.
//
// twilio-go has no base-URL option, no context and no retries, and it drops
// the status and headers of failed calls. Each Send therefore builds a
// light client.Client whose http.Client carries a per-call RoundTripper
// (see attempt) that points the request at api_base_url, applies Send's
// context and records what came back. Only the client and rest/api/v2010
// packages are imported; the root package would compile every Twilio API.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/crier-dev/crier/channels"
)

var _ channels.Channel = (*Sender)(nil)

// Sender sends SMS through one Twilio account. It is safe for concurrent
// use: the fields below never change after New, and everything twilio-go
// keeps per request is built per Send.
type Sender struct {
	name       string
	accountSID string
	creds      *client.Credentials // read-only; shared by every Send
	msgService string
	from       string
	callback   string // status_callback_url as configured
	callbackD  string // callback followed by "?d=" or "&d="
	base       *url.URL
	rt         http.RoundTripper
	timeout    time.Duration
	now        func() time.Time
	secrets    []string // strings that must never appear in an error
}

// Option adjusts a Sender at construction.
type Option func(*options)

type options struct {
	hc  *http.Client
	now func() time.Time
}

// WithHTTPClient makes the Sender send through hc's Transport (to wrap it
// for tracing, or to trust a test CA). A non-zero hc.Timeout replaces
// Config.Timeout; hc's redirect policy and cookie jar are not used, since
// a redirected POST could send a message twice.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.hc = hc }
}

// WithClock sets the clock used to turn a Retry-After date into a delay.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New validates c (after applying its defaults) and returns a Sender for
// the channel instance called name.
func New(name string, c Config, opts ...Option) (*Sender, error) {
	if name == "" {
		return nil, errors.New("twilio: channel name is empty")
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c.Defaults()
	if err := c.Validate().Err(); err != nil {
		return nil, fmt.Errorf("twilio channel %q: %w", name, err)
	}
	base, err := url.Parse(c.APIBaseURL)
	if err != nil { // Validate has parsed it already
		return nil, fmt.Errorf("twilio channel %q: api_base_url: %w", name, err)
	}

	user, pass := c.AccountSID, c.AuthToken.Reveal()
	if !c.AuthToken.IsSet() {
		user, pass = c.APIKeySID, c.APIKeySecret.Reveal()
	}
	s := &Sender{
		name:       name,
		accountSID: c.AccountSID,
		creds:      client.NewCredentials(user, pass),
		msgService: c.MessagingServiceSID,
		from:       c.From,
		callback:   c.StatusCallbackURL,
		base:       base,
		timeout:    c.Timeout,
		now:        o.now,
		secrets:    secretForms(user, pass),
	}
	if c.StatusCallbackURL != "" {
		sep := "?"
		if strings.Contains(c.StatusCallbackURL, "?") {
			sep = "&"
			if strings.HasSuffix(c.StatusCallbackURL, "?") || strings.HasSuffix(c.StatusCallbackURL, "&") {
				sep = ""
			}
		}
		s.callbackD = c.StatusCallbackURL + sep + "d="
	}
	if o.hc != nil {
		s.rt = o.hc.Transport
		if o.hc.Timeout > 0 {
			s.timeout = o.hc.Timeout
		}
	}
	if s.rt == nil {
		s.rt = defaultTransport()
	}
	return s, nil
}

// defaultTransport is a private copy of http.DefaultTransport that keeps
// more idle connections per host: the dispatcher sends with several
// workers to one host, and the default of 2 would re-dial constantly.
func defaultTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// Name returns the instance name from config.
func (s *Sender) Name() string { return s.name }

// Kind returns channels.KindSMS.
func (s *Sender) Kind() channels.Kind { return channels.KindSMS }

// Send posts one message to Twilio. It never retries: a POST that timed
// out may have created the message, and Twilio has no idempotency key, so
// the decision to resend belongs to the dispatcher.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, channels.Temporary(channels.ReasonTimeout, "", 0,
			fmt.Errorf("twilio: not sent: %w", err))
	}
	if strings.TrimSpace(m.Address) == "" {
		return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "",
			errors.New("twilio: not sent: no phone number"))
	}
	if m.Text == "" {
		return channels.Receipt{}, channels.Permanent(channels.ReasonRejected, "",
			errors.New("twilio: not sent: empty message text"))
	}

	a := &attempt{ctx: ctx, base: s.base, next: s.rt}
	svc := s.service(a, s.timeout)

	p := &api.CreateMessageParams{}
	p.SetTo(m.Address)
	p.SetBody(m.Text)
	if s.msgService != "" {
		p.SetMessagingServiceSid(s.msgService)
	}
	if s.from != "" {
		p.SetFrom(s.from)
	}
	if cb := s.statusCallback(m.DeliveryID); cb != "" {
		p.SetStatusCallback(cb)
	}
	msg, err := svc.CreateMessage(p)
	return s.outcome(a, m, msg, err)
}

// service builds the twilio-go API service for one request through a.
//
// client.Client is safe to share (SendRequest only reads its fields
// unless OAuth is set, which it never is here), but the RoundTripper
// must be per call to carry ctx and capture the response, so the small
// client, handler and service are built per call. The handler is built
// without NewRequestHandler so TWILIO_EDGE/TWILIO_REGION in the
// environment cannot redirect requests.
func (s *Sender) service(a *attempt, timeout time.Duration) *api.ApiService {
	cl := &client.Client{
		Credentials: s.creds,
		HTTPClient: &http.Client{
			Transport:     a,
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	cl.SetAccountSid(s.accountSID)
	return api.NewApiService(&client.RequestHandler{Client: cl})
}

// statusCallback returns the callback URL for one delivery. Without a
// delivery id (0) the URL goes out as configured and the webhook matches
// by MessageSid alone.
func (s *Sender) statusCallback(id int64) string {
	if s.callback == "" || id <= 0 {
		return s.callback
	}
	return s.callbackD + strconv.FormatInt(id, 10)
}

func (s *Sender) outcome(a *attempt, m channels.Message, msg *api.ApiV2010Message, err error) (channels.Receipt, error) {
	switch {
	case a.status >= 200 && a.status < 300:
		return accepted(a, msg, err), nil
	case a.status >= 300 && a.status < 400:
		return channels.Receipt{}, channels.Permanent(channels.ReasonConfig, httpCode(a.status),
			fmt.Errorf("twilio: HTTP %d redirect from %s: not followed, since a redirected POST could send twice; check api_base_url",
				a.status, s.base.Redacted()))
	case err == nil:
		// twilio-go returned neither an error nor went through the
		// transport; nothing says whether a message exists.
		return channels.Receipt{}, channels.Temporary(channels.ReasonUnknown, "", 0,
			errors.New("twilio: no response and no error from twilio-go"))
	}
	return channels.Receipt{}, s.classify(a, m, err)
}
