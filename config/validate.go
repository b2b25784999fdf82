package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/scheduler"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Drivers are the channel drivers crier knows.
var Drivers = []string{"sandbox", "twilio", "smtp", "slack"}

// Kind returns the kind of address the channel delivers to.
func (ch *Channel) Kind() channels.Kind {
	switch ch.Driver {
	case "twilio":
		return channels.KindSMS
	case "smtp":
		return channels.KindEmail
	case "slack":
		return channels.KindSlack
	case "sandbox":
		if ch.Sandbox != nil {
			k, _ := channels.ParseKind(ch.Sandbox.Kind)
			return k
		}
	}
	return ""
}

func (c *Config) validate() fields.List {
	var errs fields.List
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs.Add("log.format", c.Log.Format, "must be text or json")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add("log.level", c.Log.Level, "must be debug, info, warn or error")
	}
	errs.Merge("retry", c.Retry.Validate())
	if c.Schedule.Grace < 0 {
		errs.Add("schedule.grace", c.Schedule.Grace.String(), "must not be negative")
	}
	if w := c.Broadcasts.RepeatWindow; w < time.Second || w > 24*time.Hour {
		errs.Add("broadcasts.repeat_window", w.String(), "must be between 1s and 24h (default 10m): how long an identical broadcast without a key is not sent again")
	}
	if c.Templates.Dir != "" {
		if st, err := os.Stat(c.Resolve(c.Templates.Dir)); err != nil || !st.IsDir() {
			errs.Add("templates.dir", c.Templates.Dir, "is not a directory (relative paths start at the config file's directory)")
		}
	}
	for i, t := range c.Server.Tokens {
		p := fmt.Sprintf("server.tokens[%d]", i)
		if t.Name == "" {
			errs.Add(p+".name", "", "is required: name the system or person that uses the token")
		}
		switch t.Role {
		case "viewer", "operator", "admin":
		default:
			errs.Add(p+".role", t.Role, "must be viewer, operator or admin")
		}
		if !t.Token.IsSet() && t.TokenFile == "" {
			errs.Add(p+".token", "", "is required: ${ENV_VAR} or token_file")
		} else if t.Token.IsSet() && len(t.Token.Reveal()) < 16 {
			errs.Add(p+".token", "", "is shorter than 16 characters: use a long random token (openssl rand -hex 32)")
		}
	}
	if len(c.Channels) == 0 {
		errs.Add("channels", "", "no channel is defined: add at least one (driver: sandbox needs no credentials)")
	}
	for _, name := range sortedKeys(c.Channels) {
		errs = append(errs, c.validateChannel(name, c.Channels[name])...)
	}
	errs = append(errs, c.loadSubscribers()...)
	for _, name := range sortedKeys(c.Audiences) {
		p := "audiences." + name
		a := c.Audiences[name]
		if !nameRE.MatchString(name) {
			errs.Add(p, name, "audience names use lower-case letters, digits, '.', '_' and '-'")
		}
		if a == nil {
			errs.Add(p, "", "is empty: give at least one selector (roles, nations, tags, ids)")
			continue
		}
		errs.Merge(p, a.Selector.Normalize())
		if a.MinSeverity != "" {
			if _, err := incidents.ParseSeverity(a.MinSeverity); err != nil {
				errs.Add(p+".min_severity", a.MinSeverity, "must be critical, major or minor")
			}
		}
	}
	for _, name := range sortedKeys(c.Briefings) {
		p := "briefings." + name
		b := c.Briefings[name]
		if b == nil {
			errs.Add(p, "", "is empty")
			continue
		}
		if !nameRE.MatchString(name) {
			errs.Add(p, name, "briefing names use lower-case letters, digits, '.', '_' and '-'")
		}
		if b.Schedule != "" {
			if _, err := scheduler.Parse(b.Schedule); err != nil {
				errs.Add(p+".schedule", b.Schedule, "%v", err)
			}
		}
		if b.Template == "" {
			b.Template = templates.EventBriefing
		}
		errs = append(errs, c.checkEvent(p+".template", b.Template)...)
		errs = append(errs, c.checkAudience(p+".audience", b.Audience)...)
		errs = append(errs, c.checkChannels(p+".channels", b.Channels)...)
		if a := b.Alarm; a != nil {
			if b.Schedule == "" {
				errs.Add(p+".alarm", "", "needs a schedule: an alarm watches scheduled occurrences")
			}
			if a.After < time.Minute {
				errs.Add(p+".alarm.after", a.After.String(), "must be at least 1m: how long after the due time to raise the alarm")
			}
			errs = append(errs, c.checkAudience(p+".alarm.audience", a.Audience)...)
			errs = append(errs, c.checkChannels(p+".alarm.channels", a.Channels)...)
			for _, ac := range a.Channels {
				for _, bc := range b.Channels {
					if ac == bc {
						errs.Add(p+".alarm.channels", ac, "is also the briefing's channel: raise the alarm over a different channel, in case that one is the problem")
					}
				}
			}
		}
	}
	for _, name := range sortedKeys(c.Alerts) {
		p := "alerts." + name
		r := c.Alerts[name]
		if r == nil {
			errs.Add(p, "", "is empty")
			continue
		}
		if len(r.On) == 0 {
			r.On = []string{"open", "update", "resolve"}
		}
		for i, on := range r.On {
			switch on {
			case "open", "update", "resolve":
			default:
				errs.Add(fmt.Sprintf("%s.on[%d]", p, i), on, "must be open, update or resolve")
			}
		}
		if r.MinSeverity != "" {
			if _, err := incidents.ParseSeverity(r.MinSeverity); err != nil {
				errs.Add(p+".min_severity", r.MinSeverity, "must be critical, major or minor")
			}
		}
		if r.Template != "" {
			errs = append(errs, c.checkEvent(p+".template", r.Template)...)
		}
		errs = append(errs, c.checkAudience(p+".audience", r.Audience)...)
		errs = append(errs, c.checkChannels(p+".channels", r.Channels)...)
		if a := r.Ack; a != nil {
			errs = append(errs, c.validateAck(p+".ack", a, r.Channels)...)
		}
	}
	if c.Server.SessionSecret.IsSet() && len(c.Server.SessionSecret.Reveal()) < 32 {
		errs.Add("server.session_secret", "", "is shorter than 32 characters: use a long random secret (openssl rand -hex 32)")
	}
	if w := c.Webhooks; w.AckSecret.IsSet() && len(w.AckSecret.Reveal()) < 32 {
		errs.Add("webhooks.ack_secret", "", "is shorter than 32 characters: use a long random secret (openssl rand -hex 32)")
	}
	if (c.Webhooks.TwilioAuthToken.IsSet() || c.Webhooks.TwilioAuthTokenFile != "") && c.Server.PublicURL == "" {
		errs.Add("server.public_url", "", "is required with webhooks.twilio_auth_token: Twilio signs the public URL it calls, so crier must know it (e.g. https://crier.example.org)")
	}
	if d := c.SMSReplies.AckDigit; len([]rune(d)) > 1 {
		errs.Add("sms_replies.ack_digit", d, "must be one character, like 1")
	}
	return errs
}

func (c *Config) validateAck(p string, a *Ack, chans []string) fields.List {
	var errs fields.List
	if a.Within < time.Minute {
		errs.Add(p+".within", a.Within.String(), "must be at least 1m: how long recipients have to acknowledge")
	}
	if a.Quorum < 0 {
		errs.Add(p+".quorum", fmt.Sprint(a.Quorum), "must be 0 (everyone) or more")
	}
	errs = append(errs, c.checkChannelList(p+".escalate", a.Escalate)...)
	if a.Deputy != "" {
		errs = append(errs, c.checkAudience(p+".deputy", a.Deputy)...)
	}
	if !c.Webhooks.AckSecret.IsSet() && c.Webhooks.AckSecretFile == "" {
		errs.Add(p, "", "needs webhooks.ack_secret to sign acknowledgement links")
	}
	// Replies are how SMS recipients acknowledge: a one-way sender (an
	// alphanumeric sender ID) cannot receive them.
	for _, name := range append(append([]string(nil), chans...), a.Escalate...) {
		ch := c.Channels[name]
		if ch == nil || ch.Twilio == nil {
			continue
		}
		if ch.Twilio.OneWay() {
			errs.Add(p, name, "sends SMS from the alphanumeric sender ID %q, which cannot receive replies, so recipients could not acknowledge by SMS: use a long code or a messaging service, or leave this channel out of acknowledged alerts", ch.Twilio.From)
		}
		if !c.Webhooks.TwilioAuthToken.IsSet() && c.Webhooks.TwilioAuthTokenFile == "" {
			errs.Add(p, name, "acknowledgement by SMS reply needs webhooks.twilio_auth_token to verify Twilio's inbound requests")
		}
	}
	return errs
}

// checkChannelList checks optional channel names.
func (c *Config) checkChannelList(path string, names []string) fields.List {
	var errs fields.List
	for i, n := range names {
		if _, ok := c.Channels[n]; !ok {
			errs.Add(fmt.Sprintf("%s[%d]", path, i), n, "channel does not exist: define it under channels (known: %s)", strings.Join(c.ChannelNames(), ", "))
		}
	}
	return errs
}

func (c *Config) checkEvent(path, event string) fields.List {
	var errs fields.List
	for _, e := range templates.Events() {
		if e == event {
			return nil
		}
	}
	errs.Add(path, event, "is not a template event: use one of %s", strings.Join(templates.Events(), ", "))
	return errs
}

func (c *Config) checkAudience(path, name string) fields.List {
	var errs fields.List
	if name == "" {
		errs.Add(path, "", "is required: name one of the audiences")
	} else if _, ok := c.Audiences[name]; !ok {
		errs.Add(path, name, "audience does not exist: define it under audiences (known: %s)", strings.Join(sortedKeys(c.Audiences), ", "))
	}
	return errs
}

func (c *Config) checkChannels(path string, names []string) fields.List {
	var errs fields.List
	if len(names) == 0 {
		errs.Add(path, "", "is required: list one or more channel instances")
	}
	for i, n := range names {
		if _, ok := c.Channels[n]; !ok {
			errs.Add(fmt.Sprintf("%s[%d]", path, i), n, "channel does not exist: define it under channels (known: %s)", strings.Join(c.ChannelNames(), ", "))
		}
	}
	return errs
}

func (c *Config) validateChannel(name string, ch *Channel) fields.List {
	var errs fields.List
	p := "channels." + name
	if !nameRE.MatchString(name) {
		errs.Add(p, name, "channel names use lower-case letters, digits, '.', '_' and '-'")
	}
	if ch == nil {
		errs.Add(p+".driver", "", "is required: one of %s", strings.Join(Drivers, ", "))
		return errs
	}
	errs.Merge(p, ch.Limits.Validate())
	if _, err := incidents.ParseMarking(ch.MaxMarking); err != nil {
		errs.Add(p+".max_marking", ch.MaxMarking, "must be OFFICIAL or OFFICIAL-SENSITIVE")
	}
	if ch.MaxSegments < 0 || ch.MaxSegments > 10 {
		errs.Add(p+".max_segments", fmt.Sprint(ch.MaxSegments), "must be between 1 and 10 (Twilio refuses bodies over 1,600 characters)")
	}
	if ch.PricePerSegment < 0 {
		errs.Add(p+".price_per_segment", fmt.Sprint(ch.PricePerSegment), "must not be negative")
	}
	if c := ch.PerSubscriber; c != nil && (c.Max < 1 || c.Window < time.Minute) {
		errs.Add(p+".per_subscriber", fmt.Sprintf("max %d per %s", c.Max, c.Window), "give max ≥ 1 and window ≥ 1m, for example {max: 5, window: 1h}")
	}
	blocks := map[string]bool{"sandbox": ch.Sandbox != nil, "twilio": ch.Twilio != nil, "smtp": ch.SMTP != nil, "slack": ch.Slack != nil}
	for _, d := range Drivers {
		if blocks[d] && d != ch.Driver {
			errs.Add(p+"."+d, "", "is set but driver is %q: remove the block or set driver: %s", ch.Driver, d)
		}
	}
	switch ch.Driver {
	case "":
		errs.Add(p+".driver", "", "is required: one of %s", strings.Join(Drivers, ", "))
	case "sandbox":
		if ch.Sandbox == nil {
			errs.Add(p+".sandbox.kind", "", "is required: say which kind the sandbox stands in for (sms, email or slack)")
		} else {
			errs.Merge(p+".sandbox", ch.Sandbox.Validate())
		}
	case "twilio":
		if ch.Twilio == nil {
			errs.Add(p+".twilio", "", "is required with driver twilio: account_sid, credentials and a sender")
		} else {
			errs.Merge(p+".twilio", ch.Twilio.Validate())
		}
	case "smtp":
		if ch.SMTP == nil {
			errs.Add(p+".smtp", "", "is required with driver smtp: host, port, tls and from")
		} else {
			errs.Merge(p+".smtp", ch.SMTP.Validate())
		}
	case "slack":
		if ch.Slack == nil {
			errs.Add(p+".slack", "", "is required with driver slack: token or webhook_url")
		} else {
			errs.Merge(p+".slack", ch.Slack.Validate())
		}
	default:
		errs.Add(p+".driver", ch.Driver, "is not a driver: use one of %s", strings.Join(Drivers, ", "))
	}
	return errs
}

// People is every subscriber from the config: inline ones and the CSV
// file's, normalised. It is filled by Load.
func (c *Config) People() []subscribers.Subscriber { return c.people }

func (c *Config) loadSubscribers() fields.List {
	var errs fields.List
	seen := map[string]string{}
	for i := range c.Subscribers.Inline {
		s := &c.Subscribers.Inline[i]
		p := fmt.Sprintf("subscribers.inline[%d]", i)
		errs.Merge(p, s.Normalize())
		if prev, ok := seen[s.ID]; ok && s.ID != "" {
			errs.Add(p+".id", s.ID, "is used twice (also at %s): ids must be unique", prev)
		}
		seen[s.ID] = p
	}
	c.people = append([]subscribers.Subscriber(nil), c.Subscribers.Inline...)
	if c.Subscribers.CSV == "" {
		return errs
	}
	f, err := os.Open(c.Resolve(c.Subscribers.CSV))
	if err != nil {
		errs.Add("subscribers.csv", c.Subscribers.CSV, "cannot be opened: %v", unwrapPathErr(err))
		return errs
	}
	defer f.Close()
	res, err := subscribers.ReadCSV(f)
	if err != nil {
		errs.Add("subscribers.csv", c.Subscribers.CSV, "%v", err)
		return errs
	}
	for _, re := range res.Errors {
		errs.Add("subscribers.csv", c.Subscribers.CSV, "%s", re.Error())
	}
	for _, s := range res.Subscribers {
		if prev, ok := seen[s.ID]; ok {
			errs.Add("subscribers.csv", c.Subscribers.CSV, "subscriber id %q is also defined at %s", s.ID, prev)
			continue
		}
		seen[s.ID] = "subscribers.csv"
		c.people = append(c.people, s)
	}
	return errs
}
