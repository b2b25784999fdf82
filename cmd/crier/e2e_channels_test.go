package main

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// The whole flow on the real drivers (twilio-go, go-mail, slack-go),
// each pointed at its in-process protocol peer on 127.0.0.1: what the
// peers received is asserted, and the log is checked against it.

const smtpPassword = "smtp-peer-password-0123456789"

// e2e is one test's peers and harness.
type e2e struct {
	*harness
	twilio *channeltest.TwilioPeer
	smtp   *channeltest.SMTPPeer
	slack  *channeltest.SlackPeer
	// outputs collects every stdout and stderr, for the secret check.
	outputs []string
}

func newE2E(t *testing.T, twilioOpts ...channeltest.TwilioOption) *e2e {
	t.Helper()
	return newE2EWith(t, channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", smtpPassword)), twilioOpts...)
}

// newE2EWith is newE2E with the SMTP peer given (it must take AUTH as
// crier with smtpPassword), so that two installations can share one.
func newE2EWith(t *testing.T, sm *channeltest.SMTPPeer, twilioOpts ...channeltest.TwilioOption) *e2e {
	t.Helper()
	tw := channeltest.NewTwilioPeer(t, twilioOpts...)
	sl := channeltest.NewSlackPeer(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "e2e.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer(
		"@@TWILIO_ACCOUNT_SID@@", tw.AccountSID,
		"@@TWILIO_FROM@@", tw.From,
		"@@TWILIO_URL@@", tw.URL,
		"@@SMTP_PORT@@", strconv.Itoa(sm.Port),
		"@@SLACK_URL@@", sl.URL,
	).Replace(string(raw))
	if strings.Contains(yaml, "@@") {
		t.Fatalf("testdata/e2e.yaml has an unfilled marker")
	}
	h := newHarness(t, yaml)
	h.setenv("TWILIO_AUTH_TOKEN", tw.AuthToken)
	h.setenv("SLACK_BOT_TOKEN", sl.Token)
	h.setenv("SMTP_PASSWORD", smtpPassword)
	// Retries and leases must see time pass; the clock starts at testEpoch.
	h.tick()
	return &e2e{harness: h, twilio: tw, smtp: sm, slack: sl}
}

// cli runs a command that must succeed, bounding delivery to a few seconds
// where the command delivers, and keeps its output for the secret check.
func (x *e2e) cli(args ...string) result {
	x.t.Helper()
	r := x.mustRun(args...)
	x.outputs = append(x.outputs, r.stdout, r.stderr)
	return r
}

// bodies returns log --json --show-body rows by subscriber/kind for a trigger.
func (x *e2e) bodies(trigger string) map[string]logBody {
	x.t.Helper()
	r := x.cli("log", "--json", "--show-body", "--trigger", trigger)
	out := map[string]logBody{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var b logBody
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			x.t.Fatalf("log --json: %v\n%s", err, line)
		}
		out[b.Subscriber+"/"+b.Kind] = b
	}
	return out
}

type logBody struct {
	ID         int64  `json:"id"`
	Kind       string `json:"kind"`
	Subscriber string `json:"subscriber"`
	Address    string `json:"address"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	Attempts   int    `json:"attempts"`
	ProviderID string `json:"provider_id"`
	Subject    string `json:"subject"`
	Text       string `json:"text"`
	HTML       string `json:"html"`
}

// checkSecrets fails if a credential (or the Basic auth header built from
// one) appears in anything crier printed.
func (x *e2e) checkSecrets(t *testing.T) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte(x.twilio.AccountSID + ":" + x.twilio.AuthToken))
	smtpPlain := base64.StdEncoding.EncodeToString([]byte("\x00crier\x00" + smtpPassword))
	secrets := []string{x.twilio.AuthToken, x.slack.Token, smtpPassword, basic, smtpPlain}
	all := strings.Join(x.outputs, "\n")
	assertNoSecrets(t, "crier output", all, secrets...)
	for _, s := range []string{"Authorization:", "Basic "} {
		if strings.Contains(all, s) {
			t.Errorf("crier output contains %q", s)
		}
	}
	// The database (and its write-ahead log) is evidence that gets copied
	// and handed over: no credential may be stored in it either.
	dbs, err := filepath.Glob(filepath.Join(x.dir, "crier.db*"))
	if err != nil || len(dbs) == 0 {
		t.Fatalf("no database files in the test directory (%v)", err)
	}
	for _, p := range dbs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecrets(t, filepath.Base(p), string(b), secrets...)
	}
}

// TestE2E_Channels_IncidentAndBriefing opens a critical incident, updates
// it and sends a briefing over Twilio, Slack and SMTP peers.
func TestE2E_Channels_IncidentAndBriefing(t *testing.T) {
	x := newE2E(t)
	const title = "111 clinical system down"
	x.cli("incident", "open", "--title", title, "--severity", "critical",
		"--impact", "Referrals@wales=outage:phone the duty clinician", "--wait", "10s")

	open := x.bodies("incident:INC-1:1")
	var parentTS string
	t.Run("sms at twilio", func(t *testing.T) {
		reqs := x.twilio.Requests()
		if len(reqs) != 2 {
			t.Fatalf("Twilio peer got %d requests, want 2 (the two Welsh clinicians)", len(reqs))
		}
		want := map[string]string{"+447400123410": "dr-morgan", "+447400123411": "dr-hughes"}
		for _, rq := range reqs {
			sub, ok := want[rq.To]
			if !ok {
				t.Errorf("SMS to unexpected number %q", rq.To)
				continue
			}
			if rq.Method != "POST" || rq.PathAccountSID != x.twilio.AccountSID || !rq.Authorized || rq.User != x.twilio.AccountSID {
				t.Errorf("SMS to %s: %s %s user %q authorized %v", rq.To, rq.Method, rq.Path, rq.User, rq.Authorized)
			}
			if !strings.HasPrefix(rq.ContentType, "application/x-www-form-urlencoded") {
				t.Errorf("SMS to %s: Content-Type %q", rq.To, rq.ContentType)
			}
			if got := formKeys(rq.Form); !slices.Equal(got, []string{"Body", "From", "To"}) {
				t.Errorf("SMS to %s: form fields %v, want Body, From, To", rq.To, got)
			}
			if rq.From != x.twilio.From {
				t.Errorf("SMS to %s: From %q, want %q", rq.To, rq.From, x.twilio.From)
			}
			row := open[sub+"/sms"]
			if rq.Body == "" || rq.Body != row.Text {
				t.Errorf("SMS to %s: the peer got Body %q; the log has text %q", rq.To, rq.Body, row.Text)
			}
			if row.Status != "sent" || row.ProviderID != rq.SID || row.Address != rq.To {
				t.Errorf("log row for %s: status %s provider_id %q address %q; the peer created %s for %s", sub, row.Status, row.ProviderID, row.Address, rq.SID, rq.To)
			}
		}
		if !strings.Contains(open["dr-hughes/sms"].Text, "phone the duty clinician") {
			t.Errorf("dr-hughes's SMS lacks the workaround: %q", open["dr-hughes/sms"].Text)
		}
	})
	t.Run("slack parent post", func(t *testing.T) {
		posts := x.slack.Posts()
		if len(posts) != 1 {
			t.Fatalf("Slack peer got %d requests, want 1: %+v", len(posts), posts)
		}
		p := posts[0]
		if p.Method != "chat.postMessage" || !p.Authorized || p.Channel != "C0RESPONSE1" || p.ThreadTS != "" || p.Error != "" || p.RespTS == "" {
			t.Fatalf("first Slack post: method %s authorized %v channel %s thread_ts %q error %q ts %q", p.Method, p.Authorized, p.Channel, p.ThreadTS, p.Error, p.RespTS)
		}
		if !strings.Contains(p.AllText(), title) {
			t.Errorf("the Slack post does not show the title:\n%s", p.AllText())
		}
		parentTS = p.RespTS
		row := open["response-team/slack"]
		if row.Status != "sent" || row.ProviderID != "C0RESPONSE1/"+p.RespTS {
			t.Errorf("log row for the Slack post: status %s provider_id %q, want C0RESPONSE1/%s", row.Status, row.ProviderID, p.RespTS)
		}
	})
	if parentTS == "" {
		t.Fatal("no Slack parent message to thread under")
	}

	x.cli("incident", "update", "INC-1", "--status", "identified", "--text", "Supplier confirms ransomware; systems isolated", "--wait", "10s")
	t.Run("slack thread and parent edit", func(t *testing.T) {
		posts := x.slack.Posts()[1:]
		var reply, edit *channeltest.SlackPost
		for i := range posts {
			switch posts[i].Method {
			case "chat.postMessage":
				reply = &posts[i]
			case "chat.update":
				edit = &posts[i]
			}
		}
		if len(posts) != 2 || reply == nil || edit == nil {
			t.Fatalf("after the update the Slack peer got %d more requests, want a chat.postMessage and a chat.update: %+v", len(posts), posts)
		}
		if reply.Channel != "C0RESPONSE1" || reply.ThreadTS != parentTS || !reply.Threaded || reply.Error != "" {
			t.Errorf("update reply: channel %s thread_ts %q (parent %s) threaded %v error %q", reply.Channel, reply.ThreadTS, parentTS, reply.Threaded, reply.Error)
		}
		if !strings.Contains(reply.AllText(), "Supplier confirms ransomware") {
			t.Errorf("the threaded reply does not carry the update text:\n%s", reply.AllText())
		}
		if edit.Channel != "C0RESPONSE1" || edit.TS != parentTS || edit.Error != "" {
			t.Errorf("parent edit: channel %s ts %q (parent %s) error %q", edit.Channel, edit.TS, parentTS, edit.Error)
		}
		if !strings.Contains(strings.ToLower(edit.AllText()), "identified") {
			t.Errorf("the edited parent does not show the new status:\n%s", edit.AllText())
		}
		row := x.bodies("incident:INC-1:2")["response-team/slack"]
		if row.Status != "sent" || row.ProviderID != "C0RESPONSE1/"+reply.RespTS {
			t.Errorf("log row for the reply: status %s provider_id %q, want C0RESPONSE1/%s", row.Status, row.ProviderID, reply.RespTS)
		}
	})

	x.cli("brief", "ministers-daily", "--wait", "10s")
	t.Run("briefing at smtp", func(t *testing.T) {
		msgs := x.smtp.Messages()
		if len(msgs) != 1 {
			t.Fatalf("SMTP peer got %d messages, want 1 (official-scotland has no email)", len(msgs))
		}
		m := msgs[0]
		if m.Header == nil {
			t.Fatalf("the message header does not parse:\n%s", m.Data)
		}
		rows := x.bodies(briefingTrigger(x.harness))
		row := rows["minister-health/email"]
		if !slices.Equal(m.To, []string{"alex.carter@health-minister.example.org"}) || m.From != "briefings@example.org" || m.Auth != "crier" {
			t.Errorf("envelope: from %q to %v auth %q", m.From, m.To, m.Auth)
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil || subject == "" || subject != row.Subject {
			t.Errorf("Subject %q (%v); the log has %q", subject, err, row.Subject)
		}
		mid := m.Header.Get("Message-ID")
		if !strings.HasPrefix(mid, "<") || !strings.HasSuffix(mid, "@example.org>") || mid != row.ProviderID {
			t.Errorf("Message-ID %q; the log's provider_id is %q", mid, row.ProviderID)
		}
		mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
			t.Errorf("Content-Type %q (%v), want multipart/alternative with a boundary", m.Header.Get("Content-Type"), err)
		}
		for _, part := range []string{"text/plain", "text/html"} {
			if !strings.Contains(string(m.Data), "Content-Type: "+part) {
				t.Errorf("the message has no %s part", part)
			}
		}
		if row.Status != "sent" || row.Attempts != 1 {
			t.Errorf("minister-health: status %s after %d attempts", row.Status, row.Attempts)
		}
		if s := rows["official-scotland/email"]; s.Status != "suppressed" || s.Reason != "no_address" {
			t.Errorf("official-scotland: status %s reason %s, want suppressed/no_address", s.Status, s.Reason)
		}
	})

	t.Run("log rows", func(t *testing.T) {
		r := x.cli("log", "--json")
		for _, row := range parseJSONLines(t, r.stdout) {
			if row.Status != "sent" && row.Status != "suppressed" {
				t.Errorf("row %d (%s %s %s): status %s reason %s", row.ID, row.Trigger, row.Kind, row.Subscriber, row.Status, row.Reason)
			}
			if row.Status == "sent" && row.ProviderID == "" {
				t.Errorf("row %d sent without a provider_id", row.ID)
			}
		}
	})
	t.Run("no secrets in output", func(t *testing.T) {
		x.cli("log", "--show-body")
		x.cli("check-config")
		x.checkSecrets(t)
	})
}

// TestE2E_Channels_OptedOut proves a Twilio 21610 (the recipient replied
// STOP) fails that delivery as opted_out, and the next message to the
// number is suppressed without a request to Twilio.
func TestE2E_Channels_OptedOut(t *testing.T) {
	const stopped = "+447400123411"
	x := newE2E(t, channeltest.WithTwilioRespond(func(_ int, form url.Values) *channeltest.TwilioResponse {
		if form.Get("To") == stopped {
			return channeltest.TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
		}
		return nil
	}))
	x.cli("incident", "open", "--title", "111 clinical system down", "--severity", "critical",
		"--impact", "Referrals@wales=outage:phone the duty clinician", "--wait", "10s")
	open := x.bodies("incident:INC-1:1")
	if r := open["dr-hughes/sms"]; r.Status != "failed" || r.Reason != "opted_out" || r.Attempts != 1 {
		t.Errorf("dr-hughes after 21610: status %s reason %s attempts %d, want failed/opted_out after 1", r.Status, r.Reason, r.Attempts)
	}
	if r := open["dr-morgan/sms"]; r.Status != "sent" {
		t.Errorf("dr-morgan: status %s, want sent (only one number opted out)", r.Status)
	}
	before := countTo(x.twilio.Requests(), stopped)
	if before != 1 {
		t.Fatalf("%d requests to %s, want 1 (a permanent failure is not retried)", before, stopped)
	}

	x.cli("incident", "update", "INC-1", "--text", "Paper processes remain in force", "--wait", "10s")
	upd := x.bodies("incident:INC-1:2")
	if r := upd["dr-hughes/sms"]; r.Status != "suppressed" || r.Reason != "opted_out" || r.Attempts != 0 {
		t.Errorf("dr-hughes's update: status %s reason %s attempts %d, want suppressed/opted_out with no attempt", r.Status, r.Reason, r.Attempts)
	}
	if r := upd["dr-morgan/sms"]; r.Status != "sent" {
		t.Errorf("dr-morgan's update: status %s, want sent", r.Status)
	}
	if after := countTo(x.twilio.Requests(), stopped); after != before {
		t.Errorf("%d more request(s) to the opted-out number %s", after-before, stopped)
	}
	x.checkSecrets(t)
}

func countTo(reqs []channeltest.TwilioRequest, to string) int {
	n := 0
	for _, r := range reqs {
		if r.To == to {
			n++
		}
	}
	return n
}

func formKeys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// briefingTrigger finds the trigger key of the (only) briefing in the log.
func briefingTrigger(h *harness) string {
	h.t.Helper()
	for _, row := range h.logRows() {
		if strings.HasPrefix(row.Trigger, "briefing:ministers-daily:") {
			return row.Trigger
		}
	}
	h.t.Fatal("no briefing in the log")
	return ""
}
