// Package slack delivers crier messages to Slack channels through the Web
// API (chat.postMessage and chat.update, with a bot token) or, as a
// fallback, through one incoming webhook. With a token it keeps one parent
// message per incident and destination, posts updates into its thread and
// edits the parent to show the current status.
package slack

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// DefaultAPIURL is Slack's Web API base URL.
const DefaultAPIURL = "https://slack.com/api/"

// Config is one Slack channel instance's settings. The config loader
// decodes it strictly and resolves the Secret fields from ${ENV} or their
// sibling *_file key; New also reads a *_file itself when its secret is
// still empty, so the package works without the loader.
type Config struct {
	// Token is the bot token (xoxb-…) used with the Web API.
	Token fields.Secret `yaml:"token"`
	// TokenFile is a file holding the bot token.
	TokenFile string `yaml:"token_file"`
	// APIURL is the Web API base URL; a missing trailing slash is added.
	APIURL string `yaml:"api_url"`
	// WebhookURL is an incoming-webhook URL, used instead of a token: no
	// threading, no edits, one fixed Slack channel.
	WebhookURL fields.Secret `yaml:"webhook_url"`
	// WebhookURLFile is a file holding the webhook URL.
	WebhookURLFile string `yaml:"webhook_url_file"`
	// Timeout bounds one HTTP request to Slack.
	Timeout time.Duration `yaml:"timeout"`
	// PerDestination is the number of messages per second allowed to one
	// Slack channel (Slack allows about 1 with short bursts).
	PerDestination float64 `yaml:"per_destination_rate"`
}

// Defaults fills the API URL, the timeout and the per-destination rate
// when they are zero, and adds the trailing slash slack-go needs.
func (c *Config) Defaults() {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		// slack-go builds endpoints as APIURL + "chat.postMessage".
		c.APIURL += "/"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PerDestination == 0 {
		c.PerDestination = 1
	}
}

// Validate reports every problem with the config at once; paths are the
// yaml keys. Secret values are never printed.
func (c Config) Validate() fields.List {
	var l fields.List
	hasToken := c.Token.IsSet() || c.TokenFile != ""
	hasHook := c.WebhookURL.IsSet() || c.WebhookURLFile != ""
	switch {
	case hasToken && hasHook:
		l.Add("webhook_url", "", "set either token (a bot token: threads and edits) or webhook_url (an incoming webhook), not both")
	case !hasToken && !hasHook:
		l.Add("token", "", "required: set token (a bot token xoxb-…, as ${ENV} or via token_file) or webhook_url")
	}
	if c.Token.IsSet() {
		tok := c.Token.Reveal()
		if strings.ContainsAny(tok, " \t\r\n") {
			l.Add("token", fields.Redacted, "contains white space: remove it (check the end of token_file)")
		} else if !strings.HasPrefix(tok, "xox") {
			l.Add("token", fields.Redacted, "does not look like a Slack token: use the bot token that starts with xoxb-, not the signing secret or a webhook URL")
		}
	}
	if c.WebhookURL.IsSet() {
		if msg := checkURL(c.WebhookURL.Reveal()); msg != "" {
			// The webhook URL is a credential: say what is wrong, never what it is.
			l.Add("webhook_url", fields.Redacted, "%s; want https://hooks.slack.com/services/…", msg)
		}
	}
	if c.APIURL != "" && !hasHook {
		if msg := checkURL(c.APIURL); msg != "" {
			l.Add("api_url", c.APIURL, "%s; want %s or a test server such as http://127.0.0.1:8080/api/", msg, DefaultAPIURL)
		}
	}
	if c.Timeout < 0 {
		l.Add("timeout", c.Timeout.String(), "must be positive, such as 10s (leave it out for the default 10s)")
	}
	if r := c.PerDestination; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		l.Add("per_destination_rate", fmt.Sprint(r), "must be a positive number of messages per second, such as 1 (Slack's own limit per channel)")
	}
	return l
}

// checkURL returns what is wrong with an endpoint URL, or "". Plain http is
// accepted only for loopback hosts because the token (in the form body) or
// the webhook path (the credential itself) would cross the network in clear.
func checkURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a URL"
	}
	if u.Host == "" {
		return "has no host"
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "must not have a query or fragment"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
		return "uses plain http to a non-loopback host, which would send the credential in clear"
	default:
		return "must be an https URL"
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
