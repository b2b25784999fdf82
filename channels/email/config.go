package email

import (
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// The TLS modes Config.TLS accepts.
const (
	// TLSStartTLS upgrades with STARTTLS and refuses a server that does not
	// offer it (the usual choice for port 587).
	TLSStartTLS = "starttls"
	// TLSOpportunistic upgrades when the server offers STARTTLS and sends in
	// clear text otherwise.
	TLSOpportunistic = "opportunistic"
	// TLSImplicit speaks TLS from the first byte (usually port 465).
	TLSImplicit = "implicit"
	// TLSNone never encrypts; for local relays only.
	TLSNone = "none"
)

// The SMTP AUTH mechanisms Config.Auth accepts.
const (
	AuthPlain       = "plain"
	AuthLogin       = "login"
	AuthCramMD5     = "cram-md5"
	AuthScramSHA256 = "scram-sha-256"
)

// Defaults applied by Config.Defaults.
const (
	DefaultTimeout  = 15 * time.Second
	DefaultPoolSize = 4
)

// Config is one SMTP channel instance.
type Config struct {
	Host               string        `yaml:"host"`                 // required
	Port               int           `yaml:"port"`                 // required; no silent default of 25
	TLS                string        `yaml:"tls"`                  // required: starttls, opportunistic, implicit or none
	Username           string        `yaml:"username"`             // optional; with it, SMTP AUTH
	Password           fields.Secret `yaml:"password"`             // wins over password_file when both are set
	PasswordFile       string        `yaml:"password_file"`        // read by New, trailing newline removed
	Auth               string        `yaml:"auth"`                 // plain (default with a username), login, cram-md5, scram-sha-256
	From               string        `yaml:"from"`                 // required; RFC 5322, may have a display name
	ReplyTo            string        `yaml:"reply_to"`             // optional
	HELO               string        `yaml:"helo"`                 // default: the from domain
	Timeout            time.Duration `yaml:"timeout"`              // default 15s: dial, and each message's transaction
	PoolSize           int           `yaml:"pool_size"`            // connections kept for reuse, default 4
	MessageIDDomain    string        `yaml:"message_id_domain"`    // default: the from domain
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"` // DANGEROUS: accepts any certificate; test servers only
}

// Defaults fills the optional fields: timeout 15s, pool_size 4, auth plain
// when a username is set, and helo and message_id_domain from the From
// domain. There is deliberately no default port or TLS mode: go-mail's
// own (25 with mandatory STARTTLS) is right for almost nobody.
func (c *Config) Defaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.Auth == "" && c.Username != "" {
		c.Auth = AuthPlain
	}
	domain := addressDomain(c.From)
	if c.HELO == "" {
		c.HELO = domain
	}
	if c.MessageIDDomain == "" {
		c.MessageIDDomain = domain
	}
}

// Validate reports every problem at once, each under its yaml key.
func (c Config) Validate() fields.List {
	var l fields.List
	switch {
	case c.Host == "":
		l.Add("host", "", "required: the SMTP server's host name, for example smtp.example.com")
	case strings.ContainsAny(c.Host, " \t\r\n/@"):
		l.Add("host", c.Host, "not a host name; give only the name or IP address, for example smtp.example.com")
	default:
		if _, p, err := net.SplitHostPort(c.Host); err == nil {
			l.Add("host", c.Host, "contains a port; put %s in port and only the name in host", p)
		}
	}
	switch {
	case c.Port == 0:
		l.Add("port", "", "required: there is no default; usually 587 (tls: starttls), 465 (tls: implicit) or 25 (relay)")
	case c.Port < 0 || c.Port > 65535:
		l.Add("port", strconv.Itoa(c.Port), "out of range; want 1-65535, usually 587 or 465")
	}
	switch c.TLS {
	case TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone:
	case "":
		l.Add("tls", "", "required: one of starttls (port 587), implicit (port 465), opportunistic or none")
	default:
		l.Add("tls", c.TLS, "unknown TLS mode; want one of starttls, implicit, opportunistic, none")
	}
	c.validateAuth(&l)
	if c.From == "" {
		l.Add("from", "", `required: the sender address, for example "Incident Desk" <incidents@example.com>`)
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		l.Add("from", c.From, `not an RFC 5322 address (%v); write name@example.com or "Name" <name@example.com>`, err)
	}
	if c.ReplyTo != "" {
		if _, err := mail.ParseAddress(c.ReplyTo); err != nil {
			l.Add("reply_to", c.ReplyTo, `not an RFC 5322 address (%v); write name@example.com or "Name" <name@example.com>`, err)
		}
	}
	if c.HELO != "" && !isToken(c.HELO) {
		l.Add("helo", c.HELO, "not a host name; give this machine's public DNS name, or leave it empty to use the from domain")
	}
	if c.MessageIDDomain != "" && (!isToken(c.MessageIDDomain) || strings.ContainsAny(c.MessageIDDomain, "<>@")) {
		l.Add("message_id_domain", c.MessageIDDomain, "not a domain; give a domain you own, or leave it empty to use the from domain")
	}
	if c.Timeout < 0 {
		l.Add("timeout", c.Timeout.String(), "must be positive, for example 15s; leave it empty for the default 15s")
	}
	if c.PoolSize < 0 {
		l.Add("pool_size", strconv.Itoa(c.PoolSize), "must be positive; leave it empty for the default 4")
	}
	return l
}

// validateAuth checks username, password, password_file and auth together.
func (c Config) validateAuth(l *fields.List) {
	hasPassword := c.Password.IsSet() || c.PasswordFile != ""
	switch {
	case c.Username == "" && hasPassword:
		l.Add("username", "", "required when password or password_file is set (or remove the password)")
	case c.Username != "" && !hasPassword:
		l.Add("password", "", "required when username is set; give password as ${ENV_NAME} or password_file")
	}
	switch c.Auth {
	case "", AuthPlain, AuthLogin, AuthCramMD5, AuthScramSHA256:
	default:
		l.Add("auth", c.Auth, "unknown mechanism; want one of plain, login, cram-md5, scram-sha-256")
	}
	if c.Auth != "" && c.Username == "" {
		l.Add("auth", c.Auth, "set but username is empty; add username and password, or remove auth")
	}
	plainText := c.Auth == "" || c.Auth == AuthPlain || c.Auth == AuthLogin
	if c.TLS == TLSNone && c.Username != "" && plainText && !isLoopback(c.Host) {
		l.Add("tls", c.TLS, "would send the password unencrypted to %s; use tls: starttls or implicit", c.Host)
	}
}

// addressDomain is the domain of an RFC 5322 address, "" if it has none.
func addressDomain(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return ""
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 {
		return ""
	}
	return a.Address[at+1:]
}

// isToken reports whether s is one printable word, as HELO names and
// Message-ID domains must be.
func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return s != ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
