package twilio

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// The defaults Defaults applies.
const (
	DefaultAPIBaseURL = "https://api.twilio.com"
	DefaultTimeout    = 10 * time.Second
)

// Config is one Twilio channel instance's settings. The config loader
// decodes it strictly, resolves Secret fields from ${ENV} or the sibling
// *_file key, and calls Defaults before New.
type Config struct {
	// AccountSID is the account to send from: "AC" and 32 hex digits. Required.
	AccountSID string `yaml:"account_sid"`
	// AuthToken is the account's auth token; set it, or APIKeySID and APIKeySecret.
	AuthToken fields.Secret `yaml:"auth_token"`
	// AuthTokenFile names a file holding AuthToken; the loader reads it.
	AuthTokenFile string `yaml:"auth_token_file"`
	// APIKeySID is an API key ("SK" and 32 hex digits) used instead of the auth token.
	APIKeySID string `yaml:"api_key_sid"`
	// APIKeySecret is the API key's secret.
	APIKeySecret fields.Secret `yaml:"api_key_secret"`
	// APIKeySecretFile names a file holding APIKeySecret; the loader reads it.
	APIKeySecretFile string `yaml:"api_key_secret_file"`
	// MessagingServiceSID ("MG" and 32 hex digits) lets Twilio pick the
	// sender from the service's pool. This or From is required.
	MessagingServiceSID string `yaml:"messaging_service_sid"`
	// From is an E.164 number or an alphanumeric sender ID (1-11 letters,
	// digits or spaces, at least one letter). With MessagingServiceSID it
	// pins the sender within the pool.
	From string `yaml:"from"`
	// StatusCallbackURL is the public https URL Twilio posts delivery
	// status to; crier appends d=<delivery id> to its query. Optional.
	StatusCallbackURL string `yaml:"status_callback_url"`
	// APIBaseURL is where API requests go; default https://api.twilio.com.
	// Plain http is accepted only for a loopback host (tests, a local relay).
	APIBaseURL string `yaml:"api_base_url"`
	// Timeout bounds one API request; default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults fills APIBaseURL and Timeout when they are zero.
func (c *Config) Defaults() {
	if c.APIBaseURL == "" {
		c.APIBaseURL = DefaultAPIBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// OneWay reports whether From is an alphanumeric sender ID, which
// recipients cannot reply to (so ACK and STOP by SMS do not work).
func (c Config) OneWay() bool {
	return c.From != "" && !strings.HasPrefix(c.From, "+")
}

// Validate reports every problem at once, each under its yaml key. Secret
// values are never included; other values are, so the operator sees what
// was read.
func (c Config) Validate() fields.List {
	var l fields.List
	switch {
	case c.AccountSID == "":
		l.Add("account_sid", "", "required: the account SID from the Twilio console (AC followed by 32 hex digits)")
	case !isSID(c.AccountSID, "AC"):
		l.Add("account_sid", c.AccountSID, "must be AC followed by 32 hex digits, as shown in the Twilio console")
	}
	c.validateCredentials(&l)
	c.validateSender(&l)
	if c.StatusCallbackURL != "" {
		validateCallback(&l, c.StatusCallbackURL)
	}
	if c.APIBaseURL != "" {
		validateBase(&l, c.APIBaseURL)
	}
	if c.Timeout < 0 {
		l.Add("timeout", c.Timeout.String(), "must be positive, e.g. 10s (leave it out for the default)")
	}
	return l
}

func (c Config) validateCredentials(l *fields.List) {
	token, keySID, keySecret := c.AuthToken.IsSet(), c.APIKeySID != "", c.APIKeySecret.IsSet()
	switch {
	case !token && !keySID && !keySecret:
		if c.AuthTokenFile != "" {
			l.Add("auth_token_file", c.AuthTokenFile, "gave an empty token: the file must hold the auth token")
		} else {
			l.Add("auth_token", "", "credentials required: set auth_token (or auth_token_file), or api_key_sid with api_key_secret")
		}
		return
	case token && (keySID || keySecret):
		l.Add("auth_token", "", "set either auth_token or api_key_sid with api_key_secret, not both")
		return
	}
	if token {
		checkSecretChars(l, "auth_token", c.AuthToken)
		return
	}
	switch {
	case !keySID:
		l.Add("api_key_sid", "", "required with api_key_secret: the API key SID (SK followed by 32 hex digits)")
	case !isSID(c.APIKeySID, "SK"):
		l.Add("api_key_sid", c.APIKeySID, "must be SK followed by 32 hex digits")
	}
	if !keySecret {
		if c.APIKeySecretFile != "" {
			l.Add("api_key_secret_file", c.APIKeySecretFile, "gave an empty secret: the file must hold the API key secret")
		} else {
			l.Add("api_key_secret", "", "required with api_key_sid: set api_key_secret (or api_key_secret_file)")
		}
		return
	}
	checkSecretChars(l, "api_key_secret", c.APIKeySecret)
}

// checkSecretChars mirrors twilio-go, which refuses (without sending) any
// credential that is not letters and digits. Catching it here turns a
// failure at the first send into a start-up error. The value is never shown.
func checkSecretChars(l *fields.List, key string, s fields.Secret) {
	for _, r := range s.Reveal() {
		if !isAlnum(r) {
			l.Add(key, "", "must contain only letters and digits; check for quotes, spaces or a trailing newline")
			return
		}
	}
}

func (c Config) validateSender(l *fields.List) {
	if c.MessagingServiceSID == "" && c.From == "" {
		l.Add("from", "", "required unless messaging_service_sid is set: an E.164 number (+447400123456) or an alphanumeric sender ID")
	}
	if c.MessagingServiceSID != "" && !isSID(c.MessagingServiceSID, "MG") {
		l.Add("messaging_service_sid", c.MessagingServiceSID, "must be MG followed by 32 hex digits")
	}
	if c.From != "" && !isE164(c.From) && !isSenderID(c.From) {
		l.Add("from", c.From, "must be an E.164 number (+ then country code and number, no spaces, e.g. +447400123456) "+
			"or an alphanumeric sender ID (1-11 letters, digits or spaces, at least one letter)")
	}
}

func validateCallback(l *fields.List, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		l.Add("status_callback_url", raw, "is not a URL: %v", err)
	case u.User != nil:
		// Do not echo the value: it holds a password.
		l.Add("status_callback_url", "", "must not contain user:password; Twilio signs its callbacks instead")
	case u.Scheme != "https" || u.Host == "":
		l.Add("status_callback_url", raw, "must be an absolute https URL that Twilio can reach, e.g. https://crier.example.org/webhooks/twilio/status")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		l.Add("status_callback_url", raw, "must not contain a #fragment")
	case u.Query().Has("d"):
		l.Add("status_callback_url", raw, "must not use the query parameter d: crier sets it to the delivery id")
	}
}

func validateBase(l *fields.List, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		l.Add("api_base_url", raw, "is not a URL: %v", err)
	case u.User != nil:
		l.Add("api_base_url", "", "must not contain user:password; credentials come from auth_token or api_key_secret")
	case u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		l.Add("api_base_url", raw, "must be an absolute http(s) URL such as %s", DefaultAPIBaseURL)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		l.Add("api_base_url", raw, "must use https: plain http would send the credentials in the clear (http is allowed only for 127.0.0.1, ::1 or localhost)")
	case u.RawQuery != "" || u.Fragment != "":
		l.Add("api_base_url", raw, "must not have a query or fragment; give scheme, host and optionally a path prefix")
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isSID reports whether s is prefix followed by 32 hex digits.
func isSID(s, prefix string) bool {
	if len(s) != len(prefix)+32 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, r := range s[len(prefix):] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// isE164 reports whether s is "+", a non-zero digit, and 1-14 more digits.
func isE164(s string) bool {
	d, ok := strings.CutPrefix(s, "+")
	if !ok || len(d) < 2 || len(d) > 15 || d[0] == '0' {
		return false
	}
	for _, r := range d {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isSenderID reports whether s is an alphanumeric sender ID: 1-11 ASCII
// letters, digits or inner spaces, at least one of them a letter.
func isSenderID(s string) bool {
	if len(s) == 0 || len(s) > 11 || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	letter := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			letter = true
		case r >= '0' && r <= '9' || r == ' ':
		default:
			return false
		}
	}
	return letter
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
