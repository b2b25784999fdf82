package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/config"
	"github.com/crier-dev/crier/internal/fields"
)

// noEnv is a getenv for configs that must not read the environment.
func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// problems parses raw and returns its problems; a nil error gives none.
func problems(t *testing.T, err error) fields.List {
	t.Helper()
	if err == nil {
		return nil
	}
	l, ok := fields.AsList(err)
	if !ok {
		t.Fatalf("Parse error is not a field list: %v", err)
	}
	return l
}

// find returns the problem with path, or nil.
func find(l fields.List, path string) *fields.Error {
	for _, e := range l {
		if e.Path == path {
			return e
		}
	}
	return nil
}

// lineOf is the 1-based line of the first line of text containing sub.
func lineOf(t *testing.T, text, sub string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("%q not found", sub)
	return 0
}

// TestConfig_Parse_Example proves the shipped example parses as-is with no
// environment, with the shape its comments describe.
func TestConfig_Parse_Example(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := config.Parse(raw, dir, noEnv)
	if err != nil {
		t.Fatalf("Parse(config.example.yaml): %v", err)
	}
	if got := c.ChannelNames(); strings.Join(got, ",") != "clinician-sms,ministers-email,ops-sms,response-slack" {
		t.Errorf("channels %v", got)
	}
	for name, kind := range map[string]string{"clinician-sms": "sms", "ministers-email": "email", "ops-sms": "sms", "response-slack": "slack"} {
		if ch := c.Channels[name]; ch == nil || ch.Driver != "sandbox" || string(ch.Kind()) != kind {
			t.Errorf("channel %s: %+v, want a sandbox of kind %s", name, ch, kind)
		}
	}
	if got, want := c.DatabaseURL().Reveal(), "sqlite:"+filepath.Join(dir, "crier.db"); got != want {
		t.Errorf("database %q, want %q: a SQLite file next to the config", got, want)
	}
	if n := strings.Count(string(raw), "\n    - id: "); len(c.People()) != n || n == 0 {
		t.Errorf("%d people, the example lists %d", len(c.People()), n)
	}
	for _, p := range c.People() {
		if p.Phone != "" && !strings.HasPrefix(p.Phone, "+44") {
			t.Errorf("%s's phone %q is not normalised to E.164", p.ID, p.Phone)
		}
	}
	if b := c.Briefings["ministers-daily"]; b == nil || b.Audience != "ministers" || b.Template != "briefing" {
		t.Errorf("briefing ministers-daily: %+v", b)
	}
	if len(c.Alerts) != 2 || c.Audiences["clinicians"] == nil || !c.Audiences["clinicians"].IncidentNations {
		t.Errorf("alerts %d, clinicians audience %+v", len(c.Alerts), c.Audiences["clinicians"])
	}
	if c.Retry.MaxAttempts != 12 || c.Retry.OutagePause.Seconds() != 5 || c.Server.Listen != "127.0.0.1:8080" || c.Log.Format != "text" {
		t.Errorf("defaults: retry %+v listen %q log %+v", c.Retry, c.Server.Listen, c.Log)
	}
}

// TestConfig_Parse_UnknownKeys proves every unknown key is reported, each
// with its full key path and its own line, not just the first.
func TestConfig_Parse_UnknownKeys(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "unknown_keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Parse(raw, dir, noEnv)
	l := problems(t, err)
	text := string(raw)
	want := map[string]string{
		"colour":                       "colour: blue",
		"server.listen_port":           "listen_port:",
		"server.tokens[0].scope":       "scope: all",
		"retry.max_retries":            "max_retries:",
		"channels.sms.rate_limit":      "rate_limit:",
		"channels.sms.sandbox.kinds":   "kinds: [sms]",
		"subscribers.inline[0].mobile": "mobile:",
		"audiences.all.nation":         "nation: [wales]",
		"briefings.daily.when":         "when:",
		"alerts.page.channel":          "channel: sms",
	}
	unknown := 0
	for _, e := range l {
		if strings.Contains(e.Msg, "unknown key") {
			unknown++
		}
	}
	if unknown != len(want) {
		t.Errorf("%d unknown keys reported, want %d:\n%v", unknown, len(want), err)
	}
	for path, marker := range want {
		e := find(l, path)
		if e == nil {
			t.Errorf("no problem for %s:\n%v", path, err)
			continue
		}
		if line := lineOf(t, text, marker); e.Line != line {
			t.Errorf("%s reported on line %d, want %d", path, e.Line, line)
		}
		if !strings.Contains(e.Msg, "unknown key") || !strings.Contains(e.Msg, "known keys here are") {
			t.Errorf("%s: message %q does not say which keys are known", path, e.Msg)
		}
	}
}

const secretValue = "s3cretValueFromEnvironment0123456789"

// TestConfig_Parse_Secrets proves ${ENV} and *_file resolution for every
// secret field, and that every refusal names the key but never the value.
func TestConfig_Parse_Secrets(t *testing.T) {
	type reveal func(*config.Config) string
	token := func(c *config.Config) string { return c.Server.Tokens[0].Token.Reveal() }
	cases := []struct {
		name     string
		yaml     string // appended to a base with one sandbox channel
		env      map[string]string
		files    map[string]string // relative to the config directory
		get      reveal
		want     string // the resolved value, when no problem is expected
		wantPath string // the problem expected, if any
		wantMsg  string
	}{
		{name: "token from env", yaml: "server:\n  tokens:\n    - name: a\n      token: ${CRIER_TOKEN}\n",
			env: map[string]string{"CRIER_TOKEN": secretValue}, get: token, want: secretValue},
		{name: "env value trimmed", yaml: "server:\n  tokens:\n    - name: a\n      token: ${CRIER_TOKEN}\n",
			env: map[string]string{"CRIER_TOKEN": " " + secretValue + "\n"}, get: token, want: secretValue},
		{name: "token_file relative to the config", yaml: "server:\n  tokens:\n    - name: a\n      token_file: secrets/token\n",
			files: map[string]string{"secrets/token": secretValue + "\n"}, get: token, want: secretValue},
		{name: "twilio auth_token_file", yaml: "channels:\n  sms-live:\n    driver: twilio\n    twilio:\n      account_sid: AC0123456789abcdef0123456789abcdef\n" +
			"      auth_token_file: twilio.txt\n      from: \"+15005550006\"\n",
			files: map[string]string{"twilio.txt": secretValue + "\n"},
			get:   func(c *config.Config) string { return c.Channels["sms-live"].Twilio.AuthToken.Reveal() }, want: secretValue},
		{name: "slack token from env", yaml: "channels:\n  slack-live:\n    driver: slack\n    slack:\n      token: ${SLACK_BOT_TOKEN}\n",
			env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-" + secretValue},
			get: func(c *config.Config) string { return c.Channels["slack-live"].Slack.Token.Reveal() }, want: "xoxb-" + secretValue},
		{name: "smtp password from env", yaml: "channels:\n  mail:\n    driver: smtp\n    smtp:\n      host: smtp.example.org\n      port: 587\n" +
			"      tls: starttls\n      username: crier\n      password: ${SMTP_PASSWORD}\n      from: crier@example.org\n",
			env: map[string]string{"SMTP_PASSWORD": secretValue},
			get: func(c *config.Config) string { return c.Channels["mail"].SMTP.Password.Reveal() }, want: secretValue},
		{name: "session secret from env", yaml: "server:\n  session_secret: ${CRIER_SESSION_SECRET}\n",
			env: map[string]string{"CRIER_SESSION_SECRET": secretValue},
			get: func(c *config.Config) string { return c.Server.SessionSecret.Reveal() }, want: secretValue},
		{name: "session_secret_file", yaml: "server:\n  session_secret_file: session.txt\n",
			files: map[string]string{"session.txt": secretValue + "\n"},
			get:   func(c *config.Config) string { return c.Server.SessionSecret.Reveal() }, want: secretValue},
		{name: "session secret too short", yaml: "server:\n  session_secret: ${CRIER_SESSION_SECRET}\n",
			env: map[string]string{"CRIER_SESSION_SECRET": "short-secret"}, wantPath: "server.session_secret", wantMsg: "shorter than 32"},
		{name: "inline session secret", yaml: "server:\n  session_secret: " + secretValue + "\n",
			wantPath: "server.session_secret", wantMsg: "must not be written in the config file"},
		{name: "env unset", yaml: "server:\n  tokens:\n    - name: a\n      token: ${CRIER_MISSING}\n",
			wantPath: "server.tokens[0].token", wantMsg: "CRIER_MISSING"},
		{name: "inline secret", yaml: "server:\n  tokens:\n    - name: a\n      token: " + secretValue + "\n",
			wantPath: "server.tokens[0].token", wantMsg: "must not be written in the config file"},
		{name: "dollar without braces", yaml: "server:\n  tokens:\n    - name: a\n      token: $" + secretValue + "\n",
			wantPath: "server.tokens[0].token", wantMsg: "${ENV_VAR}"},
		{name: "inline slack token", yaml: "channels:\n  slack-live:\n    driver: slack\n    slack:\n      token: xoxb-" + secretValue + "\n",
			wantPath: "channels.slack-live.slack.token", wantMsg: "must not be written"},
		{name: "token and token_file", yaml: "server:\n  tokens:\n    - name: a\n      token: ${CRIER_TOKEN}\n      token_file: t.txt\n",
			env: map[string]string{"CRIER_TOKEN": secretValue}, files: map[string]string{"t.txt": secretValue},
			wantPath: "server.tokens[0].token", wantMsg: "keep one"},
		{name: "token_file missing", yaml: "server:\n  tokens:\n    - name: a\n      token_file: nowhere.txt\n",
			wantPath: "server.tokens[0].token_file", wantMsg: "cannot be read"},
		{name: "token_file empty", yaml: "server:\n  tokens:\n    - name: a\n      token_file: empty.txt\n",
			files: map[string]string{"empty.txt": "\n"}, wantPath: "server.tokens[0].token_file", wantMsg: "empty"},
	}
	const base = "channels:\n  sms:\n    driver: sandbox\n    sandbox:\n      kind: sms\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			yaml := tc.yaml
			if strings.HasPrefix(yaml, "channels:\n") {
				yaml = base + strings.TrimPrefix(yaml, "channels:\n")
			} else {
				yaml = base + yaml
			}
			c, err := config.Parse([]byte(yaml), dir, envOf(tc.env))
			l := problems(t, err)
			if err != nil && strings.Contains(err.Error(), secretValue) {
				t.Errorf("the error shows the secret value:\n%v", err)
			}
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := tc.get(c); got != tc.want {
					t.Errorf("resolved to %q, want %q", got, tc.want)
				}
				return
			}
			e := find(l, tc.wantPath)
			if e == nil {
				t.Fatalf("no problem for %s:\n%v", tc.wantPath, err)
			}
			if !strings.Contains(e.Error(), tc.wantMsg) {
				t.Errorf("%s: %q does not mention %q", tc.wantPath, e.Error(), tc.wantMsg)
			}
			if e.Line == 0 {
				t.Errorf("%s: no YAML line", tc.wantPath)
			}
		})
	}
}

// TestConfig_Redacted_NoSecrets proves the redacted dump shows where
// secrets are (as <secret>) and never their values, however they came in.
func TestConfig_Redacted_NoSecrets(t *testing.T) {
	dir := t.TempDir()
	fileSecret := "fromFile" + secretValue
	if err := os.WriteFile(filepath.Join(dir, "twilio.txt"), []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CRIER_TOKEN":     "api" + secretValue,
		"SLACK_BOT_TOKEN": "xoxb-" + secretValue,
		"SMTP_PASSWORD":   "smtp" + secretValue,
	}
	yaml := `server:
  tokens:
    - name: desk
      token: ${CRIER_TOKEN}
channels:
  sms-live:
    driver: twilio
    twilio:
      account_sid: AC0123456789abcdef0123456789abcdef
      auth_token_file: twilio.txt
      from: "+15005550006"
  slack-live:
    driver: slack
    slack:
      token: ${SLACK_BOT_TOKEN}
  mail:
    driver: smtp
    smtp:
      host: smtp.example.org
      port: 587
      tls: starttls
      username: crier
      password: ${SMTP_PASSWORD}
      from: crier@example.org
`
	c, err := config.Parse([]byte(yaml), dir, envOf(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	dump := string(out)
	for name, v := range env {
		if strings.Contains(dump, v) {
			t.Errorf("Redacted() shows the value of %s", name)
		}
	}
	if strings.Contains(dump, fileSecret) {
		t.Error("Redacted() shows the auth token read from auth_token_file")
	}
	if n := strings.Count(dump, fields.Redacted); n < 4 {
		t.Errorf("Redacted() has %d %s markers, want at least 4 (token, auth_token, slack token, password):\n%s", n, fields.Redacted, dump)
	}
	for _, want := range []string{"AC0123456789abcdef0123456789abcdef", "smtp.example.org", "twilio.txt"} {
		if !strings.Contains(dump, want) {
			t.Errorf("Redacted() lacks the non-secret %q", want)
		}
	}
}

// TestConfig_Parse_DriverBlocks proves a driver block that does not match
// the channel's driver is reported on its own line, as are a missing block
// and an unknown driver.
func TestConfig_Parse_DriverBlocks(t *testing.T) {
	const twilioBlock = "    twilio:\n      account_sid: AC0123456789abcdef0123456789abcdef\n      auth_token: ${TWILIO_AUTH_TOKEN}\n      from: \"+15005550006\"\n"
	const slackBlock = "    slack:\n      token: ${SLACK_BOT_TOKEN}\n"
	const smtpBlock = "    smtp:\n      host: smtp.example.org\n      port: 587\n      tls: starttls\n      from: crier@example.org\n"
	const sandboxBlock = "    sandbox:\n      kind: sms\n"
	cases := []struct {
		name     string
		channel  string // the channel body under channels.x
		wantPath string
		marker   string // text on the line the problem belongs to
		wantMsg  string
	}{
		{"twilio with a slack block", "    driver: twilio\n" + twilioBlock + slackBlock, "channels.x.slack", "    slack:", `driver is "twilio"`},
		{"slack with a twilio block", "    driver: slack\n" + slackBlock + twilioBlock, "channels.x.twilio", "    twilio:", `driver is "slack"`},
		{"sandbox with an smtp block", "    driver: sandbox\n" + sandboxBlock + smtpBlock, "channels.x.smtp", "    smtp:", `driver is "sandbox"`},
		{"smtp with a sandbox block", "    driver: smtp\n" + smtpBlock + sandboxBlock, "channels.x.sandbox", "    sandbox:", `driver is "smtp"`},
		{"twilio without its block", "    driver: twilio\n" + slackBlock, "channels.x.twilio", "  x:", "required"},
		{"unknown driver", "    driver: pigeon\n", "channels.x.driver", "    driver: pigeon", "sandbox, twilio, smtp, slack"},
		{"no driver", sandboxBlock, "channels.x.driver", "  x:", "required"},
	}
	env := envOf(map[string]string{"TWILIO_AUTH_TOKEN": "abcdef0123456789abcdef0123456789", "SLACK_BOT_TOKEN": "xoxb-1-2-abc"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "channels:\n  x:\n" + tc.channel
			_, err := config.Parse([]byte(yaml), t.TempDir(), env)
			l := problems(t, err)
			e := find(l, tc.wantPath)
			if e == nil {
				t.Fatalf("no problem for %s:\n%v", tc.wantPath, err)
			}
			if !strings.Contains(e.Msg, tc.wantMsg) {
				t.Errorf("%s: %q does not mention %q", tc.wantPath, e.Msg, tc.wantMsg)
			}
			if line := lineOf(t, yaml, tc.marker); e.Line != line {
				t.Errorf("%s reported on line %d, want %d", tc.wantPath, e.Line, line)
			}
		})
	}
}

// TestConfig_Parse_RepeatWindow: broadcasts.repeat_window defaults to 10m
// and a value outside 1s..24h is refused with its key path.
func TestConfig_Parse_RepeatWindow(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const line = "  repeat_window: 10m\n"
	if !strings.Contains(string(raw), line) {
		t.Fatalf("the example no longer has %q", line)
	}
	with := func(v string) string {
		if v == "" {
			return strings.Replace(string(raw), line, "", 1)
		}
		return strings.Replace(string(raw), line, "  repeat_window: "+v+"\n", 1)
	}
	c, err := config.Parse([]byte(with("")), t.TempDir(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broadcasts.RepeatWindow != config.DefaultRepeatWindow || config.DefaultRepeatWindow != 10*time.Minute {
		t.Errorf("default repeat window %s, want 10m", c.Broadcasts.RepeatWindow)
	}
	c, err = config.Parse([]byte(with("90s")), t.TempDir(), noEnv)
	if err != nil || c.Broadcasts.RepeatWindow != 90*time.Second {
		t.Fatalf("repeat_window 90s: %v, %v", c.Broadcasts.RepeatWindow, err)
	}
	for _, v := range []string{"-1m", "500ms", "25h"} {
		yaml := with(v)
		_, err := config.Parse([]byte(yaml), t.TempDir(), noEnv)
		e := find(problems(t, err), "broadcasts.repeat_window")
		if e == nil {
			t.Fatalf("repeat_window %s accepted: %v", v, err)
		}
		if want := lineOf(t, yaml, "repeat_window: "+v); e.Line != want {
			t.Errorf("repeat_window %s reported on line %d, want %d", v, e.Line, want)
		}
	}
}
