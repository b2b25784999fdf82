// Package config loads crier's YAML configuration: defaults first, unknown
// keys rejected with their line, secrets resolved from ${ENV} or a sibling
// *_file key, and every problem reported at once with its key path. Each
// component owns its own Config type; this package only composes them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/channels/sandbox"
	"github.com/crier-dev/crier/channels/slack"
	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/subscribers"
)

// Config is the whole configuration file.
type Config struct {
	Database    Database              `yaml:"database"`
	Store       Store                 `yaml:"store"`
	Server      Server                `yaml:"server"`
	Log         Log                   `yaml:"log"`
	Templates   Templates             `yaml:"templates"`
	Retry       dispatch.RetryPolicy  `yaml:"retry"`
	Schedule    Schedule              `yaml:"schedule"`
	Broadcasts  Broadcasts            `yaml:"broadcasts"`
	Channels    map[string]*Channel   `yaml:"channels"`
	Subscribers Subscribers           `yaml:"subscribers"`
	Audiences   map[string]*Audience  `yaml:"audiences"`
	Briefings   map[string]*Briefing  `yaml:"briefings"`
	Alerts      map[string]*AlertRule `yaml:"alerts"`
	Webhooks    Webhooks              `yaml:"webhooks"`
	SMSReplies  SMSReplies            `yaml:"sms_replies"`

	// Dir is the directory of the config file; relative paths in it are
	// relative to Dir.
	Dir string `yaml:"-"`
	// lines maps key paths to YAML lines, for error messages.
	lines  map[string]int
	people []subscribers.Subscriber
}

// Database says where the database lives.
type Database struct {
	// URL is sqlite:PATH (the embedded default; PATH relative to the
	// config file's directory) or postgres://… (several crier servers on
	// one database). A URL with a password comes from ${ENV} or URLFile,
	// never from the YAML itself.
	URL string `yaml:"url"`
	// URLFile is a file holding the URL (a mounted secret).
	URLFile string `yaml:"url_file"`
	// resolved is URL after ${ENV} and URLFile, with a SQLite path made
	// relative to the working directory.
	resolved fields.Secret
}

// Store is the older way to name the SQLite file: store.path is
// database.url sqlite:PATH.
type Store struct {
	// Path is the SQLite file (relative to the config file's directory).
	Path string `yaml:"path"`
}

// DatabaseURL is the database to open: a postgres:// URL, or sqlite:PATH
// with PATH relative to the working directory. It prints as <secret>.
func (c *Config) DatabaseURL() fields.Secret { return c.Database.resolved }

// SetSQLitePath points the config at a SQLite file (the demo's own).
func (c *Config) SetSQLitePath(path string) {
	c.Store.Path, c.Database.URL = path, ""
	c.Database.resolved = fields.Secret("sqlite:" + path)
}

// resolveDatabase works out database.url: ${ENV} or url_file, an inline
// URL only without a password, store.path as the older spelling, and the
// default sqlite:crier.db.
func (c *Config) resolveDatabase(getenv func(string) string) fields.List {
	var errs fields.List
	d := &c.Database
	raw := strings.TrimSpace(d.URL)
	switch {
	case raw != "" && d.URLFile != "":
		errs.Add("database.url", "", "is set together with database.url_file: keep one")
		return errs
	case d.URLFile != "":
		b, err := os.ReadFile(c.Resolve(d.URLFile))
		if err != nil {
			errs.Add("database.url_file", d.URLFile, "cannot be read: %v", err)
			return errs
		}
		raw = strings.TrimSpace(string(b))
		if raw == "" {
			errs.Add("database.url_file", d.URLFile, "is empty: it must hold the database URL")
			return errs
		}
	case envRef.MatchString(raw):
		name := envRef.FindStringSubmatch(raw)[1]
		raw = strings.TrimSpace(getenv(name))
		if raw == "" {
			errs.Add("database.url", d.URL, "refers to the environment variable %s, which is not set or empty", name)
			return errs
		}
	case raw != "":
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				errs.Add("database.url", "(a URL with a password)", "holds a password: put the URL in an environment variable (url: ${CRIER_DATABASE_URL}) or a file (url_file), never in the YAML")
				return errs
			}
		}
		if strings.Contains(raw, "password=") {
			errs.Add("database.url", "(a URL with a password)", "holds a password: put the URL in an environment variable (url: ${CRIER_DATABASE_URL}) or a file (url_file), never in the YAML")
			return errs
		}
	}
	if raw != "" && c.Store.Path != "" {
		errs.Add("store.path", c.Store.Path, "is set together with database.url: keep database.url (store.path is its older spelling for a SQLite file)")
		return errs
	}
	switch {
	case raw == "":
		path := c.Store.Path
		if path == "" {
			path = "crier.db"
		}
		d.resolved = fields.Secret("sqlite:" + c.Resolve(path))
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(raw, "sqlite:")
		if path == "" {
			errs.Add("database.url", raw, "names no file: write sqlite:PATH, for example sqlite:crier.db")
			return errs
		}
		d.resolved = fields.Secret("sqlite:" + c.Resolve(path))
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			errs.Add("database.url", "(unparsable URL)", "is not a URL: write postgres://user@host:5432/database")
			return errs
		}
		d.resolved = fields.Secret(raw)
	default:
		shown := raw
		if i := strings.Index(shown, "://"); i > 0 {
			shown = shown[:i+3] + "…"
		}
		errs.Add("database.url", shown, "must be sqlite:PATH (the default, sqlite:crier.db) or postgres://user@host:5432/database")
	}
	return errs
}

// Server configures crier serve's HTTP side.
type Server struct {
	Listen    string  `yaml:"listen"`
	PublicURL string  `yaml:"public_url"`
	Tokens    []Token `yaml:"tokens"`
	// SessionSecret keys dashboard sessions signed in with a token from
	// Tokens, so that every crier server sharing the secret (and the
	// database) accepts them; at least 32 characters. Without it
	// webhooks.ack_secret serves, and without either such a session
	// works only on the server that signed it in, until it stops.
	SessionSecret     fields.Secret `yaml:"session_secret"`
	SessionSecretFile string        `yaml:"session_secret_file"`
}

// Token is a bearer token for the API.
type Token struct {
	Name      string        `yaml:"name"`
	Role      string        `yaml:"role"`
	Token     fields.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
}

// Log configures structured logs.
type Log struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// Templates configures template overrides.
type Templates struct {
	Dir string `yaml:"dir"`
}

// Schedule configures the briefing scheduler.
type Schedule struct {
	// Grace is how late a briefing missed while crier was down may still go out.
	Grace time.Duration `yaml:"grace"`
}

// Broadcasts configures ad-hoc broadcasts (crier send, the API and the
// dashboard).
type Broadcasts struct {
	// RepeatWindow is how long a broadcast is remembered: a broadcast
	// without a key of its own that is identical to one planned within it
	// is answered with that one and not sent again (default 10m).
	RepeatWindow time.Duration `yaml:"repeat_window"`
}

// DefaultRepeatWindow is broadcasts.repeat_window when the config leaves
// it out: longer than a client's retries, a double submission or a second
// operator acting on the same news, shorter than the gap before a
// deliberate reminder.
const DefaultRepeatWindow = 10 * time.Minute

// Channel is one named channel instance.
type Channel struct {
	Driver          string `yaml:"driver"`
	dispatch.Limits `yaml:",inline"`
	// MaxMarking is the highest protective marking this channel may carry
	// (default OFFICIAL for SMS and Slack, OFFICIAL-SENSITIVE for email).
	MaxMarking string `yaml:"max_marking"`
	// MaxSegments caps an SMS's length in segments; a longer message is
	// shortened at a word boundary with a pointer to the full text (SMS
	// only; default 3, 0 = no cap).
	MaxSegments int `yaml:"max_segments"`
	// PricePerSegment is the cost of one SMS segment, for pre-flight
	// estimates (SMS only; in Currency).
	PricePerSegment float64 `yaml:"price_per_segment"`
	// Currency names PricePerSegment's currency (default GBP).
	Currency string `yaml:"currency"`
	// PerSubscriber caps how many messages one person gets on this channel
	// in a window; the excess is folded into one digest sent when the
	// window ends.
	PerSubscriber *Cap            `yaml:"per_subscriber"`
	Sandbox       *sandbox.Config `yaml:"sandbox"`
	Twilio        *twilio.Config  `yaml:"twilio"`
	SMTP          *email.Config   `yaml:"smtp"`
	Slack         *slack.Config   `yaml:"slack"`
}

// Webhooks configures what providers and recipients call back on:
// Twilio status callbacks and inbound SMS, Slack button clicks and the
// signed acknowledgement links in email. All are served by crier serve
// under server.public_url.
type Webhooks struct {
	// TwilioAuthToken verifies X-Twilio-Signature on /webhooks/twilio/*
	// (the account's auth token). Without it those routes answer 404.
	TwilioAuthToken     fields.Secret `yaml:"twilio_auth_token"`
	TwilioAuthTokenFile string        `yaml:"twilio_auth_token_file"`
	// SlackSigningSecret verifies /webhooks/slack/interactions.
	SlackSigningSecret     fields.Secret `yaml:"slack_signing_secret"`
	SlackSigningSecretFile string        `yaml:"slack_signing_secret_file"`
	// AckSecret signs acknowledgement links (HMAC-SHA256); at least 32
	// characters. Without it messages carry no acknowledgement link.
	AckSecret     fields.Secret `yaml:"ack_secret"`
	AckSecretFile string        `yaml:"ack_secret_file"`
	// AckLinkTTL is how long an acknowledgement link works (default 72h).
	AckLinkTTL time.Duration `yaml:"ack_link_ttl"`
}

// SMSReplies configures two-way SMS.
type SMSReplies struct {
	// HelpText answers HELP.
	HelpText string `yaml:"help_text"`
	// UnknownText answers a reply crier does not understand.
	UnknownText string `yaml:"unknown_text"`
	// AckDigit is a one-character reply that also acknowledges (e.g. "1").
	AckDigit string `yaml:"ack_digit"`
	// CriticalOverridesOptOut sends critical alerts even to numbers that
	// texted STOP (each override is logged). Default false: a STOP is a STOP.
	CriticalOverridesOptOut bool `yaml:"critical_overrides_opt_out"`
}

// Ack asks recipients to acknowledge, and escalates when they do not.
type Ack struct {
	// Within is how long recipients have to acknowledge.
	Within time.Duration `yaml:"within"`
	// Quorum is how many acknowledgements are enough (0: everyone).
	Quorum int `yaml:"quorum"`
	// Escalate is the ladder of channel instances tried, in order, for a
	// recipient whose delivery failed or who has not acknowledged in time.
	Escalate []string `yaml:"escalate"`
	// Deputy is the audience told when the ladder is used up.
	Deputy string `yaml:"deputy"`
}

// Cap is a rate cap per subscriber.
type Cap struct {
	Max    int           `yaml:"max"`
	Window time.Duration `yaml:"window"`
}

// Subscribers lists the people crier may notify.
type Subscribers struct {
	// CSV is a CSV file of subscribers (relative to the config file).
	CSV string `yaml:"csv"`
	// Inline subscribers written in the config itself.
	Inline []subscribers.Subscriber `yaml:"inline"`
}

// Audience is a named subscriber selector.
type Audience struct {
	subscribers.Selector `yaml:",inline"`
	// MinSeverity limits incident messages to incidents at least this severe.
	MinSeverity string `yaml:"min_severity"`
}

// Briefing is a scheduled situation report.
type Briefing struct {
	Title    string   `yaml:"title"`
	Schedule string   `yaml:"schedule"`
	Audience string   `yaml:"audience"`
	Template string   `yaml:"template"`
	Channels []string `yaml:"channels"`
	// Alarm raises the alarm when a scheduled occurrence has not gone out.
	Alarm *Alarm `yaml:"alarm"`
}

// Alarm says whom to tell, over which channels, when a briefing has not
// gone out within After of its due time.
type Alarm struct {
	After    time.Duration `yaml:"after"`
	Audience string        `yaml:"audience"`
	Channels []string      `yaml:"channels"`
}

// AlertRule sends incident events to an audience.
type AlertRule struct {
	On          []string `yaml:"on"`
	MinSeverity string   `yaml:"min_severity"`
	Audience    string   `yaml:"audience"`
	Channels    []string `yaml:"channels"`
	Template    string   `yaml:"template"`
	// Ack asks recipients to acknowledge this rule's messages.
	Ack *Ack `yaml:"ack"`
	// FoldMinor leaves minor incidents' events out of this rule's messages:
	// they appear in the next briefing instead (logged as suppressed,
	// reason folded).
	FoldMinor bool `yaml:"fold_minor"`
}

// Load reads, defaults, resolves and validates the config at path. The
// error, if any, lists every problem (errors.As a *fields.List).
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, _ := filepath.Abs(path)
	return Parse(raw, filepath.Dir(abs), os.Getenv)
}

// Parse is Load for bytes already read; dir anchors relative paths and
// getenv resolves ${ENV} secrets.
func Parse(raw []byte, dir string, getenv func(string) string) (*Config, error) {
	var errs fields.List
	lines, keyErrs, perr := checkKeys(raw, Config{})
	if perr != nil {
		return nil, perr
	}
	errs = append(errs, keyErrs...)
	c := &Config{}
	if err := yaml.UnmarshalWithOptions(raw, c); err != nil {
		errs = append(errs, &fields.Error{Path: "(yaml)", Msg: yaml.FormatError(err, false, true)})
		return nil, errs.Err()
	}
	c.Dir, c.lines = dir, lines
	c.defaults()
	errs = append(errs, resolveSecrets(reflectValue(c), "", dir, getenv)...)
	errs = append(errs, c.resolveDatabase(getenv)...)
	errs = append(errs, c.validate()...)
	// A secret that could not be resolved is also empty for the
	// component's own check: report each key once, the first reason.
	seen := map[string]bool{}
	kept := errs[:0]
	for _, e := range errs {
		if seen[e.Path] {
			continue
		}
		seen[e.Path] = true
		if e.Line == 0 {
			e.Line = c.line(e.Path)
		}
		kept = append(kept, e)
	}
	errs = kept
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	if err := errs.Err(); err != nil {
		return c, err
	}
	return c, nil
}

// Line finds the YAML line of a key path (or of its nearest parent), for
// problems found after loading (templates, locales); 0 when unknown.
func (c *Config) Line(path string) int { return c.line(path) }

// line finds the YAML line of path or of its nearest parent.
func (c *Config) line(path string) int {
	for p := path; p != ""; p = parent(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

func parent(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return p[:i]
		}
	}
	return ""
}

// Resolve turns a path from the config into a path relative to the
// working directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

func (c *Config) defaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = "127.0.0.1:8080"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Schedule.Grace == 0 {
		c.Schedule.Grace = 2 * time.Hour
	}
	if c.Broadcasts.RepeatWindow == 0 {
		c.Broadcasts.RepeatWindow = DefaultRepeatWindow
	}
	c.Retry.Defaults()
	for _, ch := range c.Channels {
		if ch == nil {
			continue
		}
		if ch.MaxMarking == "" {
			ch.MaxMarking = "OFFICIAL"
			if ch.Kind() == channels.KindEmail {
				ch.MaxMarking = "OFFICIAL-SENSITIVE"
			}
		}
		if ch.Kind() == channels.KindSMS && ch.MaxSegments == 0 {
			ch.MaxSegments = 3
		}
		if ch.Currency == "" {
			ch.Currency = "GBP"
		}
		if ch.Twilio != nil {
			ch.Twilio.Defaults()
		}
		if ch.SMTP != nil {
			ch.SMTP.Defaults()
		}
		if ch.Slack != nil {
			ch.Slack.Defaults()
		}
	}
	if c.Webhooks.AckLinkTTL == 0 {
		c.Webhooks.AckLinkTTL = 72 * time.Hour
	}
	if c.SMSReplies.HelpText == "" {
		c.SMSReplies.HelpText = "crier incident alerts. Reply ACK to acknowledge the latest alert, STOP to stop messages, START to receive them again."
	}
	if c.SMSReplies.UnknownText == "" {
		c.SMSReplies.UnknownText = "Sorry, that reply was not understood. Reply ACK to acknowledge the latest alert, HELP for help, STOP to stop messages."
	}
	for i := range c.Server.Tokens {
		if c.Server.Tokens[i].Role == "" {
			c.Server.Tokens[i].Role = "admin"
		}
	}
}

// ChannelNames lists the channel instances, sorted.
func (c *Config) ChannelNames() []string { return sortedKeys(c.Channels) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Redacted renders the config as YAML with every secret shown as <secret>.
func (c *Config) Redacted() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("config is invalid")
