package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/store"
)

// The acknowledgement story end to end, on a fake clock, with the real
// Twilio and SMTP drivers against their in-process peers and a running
// crier serve: a critical alert asks four clinicians to acknowledge
// within 15 minutes (ladder: email; then the deputies). Dr Ahmed replies
// ACK by SMS; Dr Bowen has no mobile number, is reached by email at once
// and acknowledges with the email link (the GET shows a page and
// acknowledges nothing; the POST does); Dr Chen's SMS comes back
// undelivered (30006) and is escalated to email at once; Dr Davies never
// answers, is escalated to email after 15 minutes and, 15 minutes after
// that, the deputies are told. crier acks --json shows exactly that.

const ackE2EConfig = `store:
  path: crier.db
server:
  public_url: http://127.0.0.1:8080
log:
  level: debug
retry:
  max_attempts: 2
  initial_backoff: 1s
webhooks:
  twilio_auth_token: ${TWILIO_AUTH_TOKEN}
  ack_secret: ${ACK_SECRET}
channels:
  clinician-sms:
    driver: twilio
    twilio:
      account_sid: @@TWILIO_ACCOUNT_SID@@
      auth_token: ${TWILIO_AUTH_TOKEN}
      from: "@@TWILIO_FROM@@"
      api_base_url: @@TWILIO_URL@@
      timeout: 5s
  clinician-email:
    driver: smtp
    smtp:
      host: 127.0.0.1
      port: @@SMTP_PORT@@
      tls: none
      username: crier
      password: ${SMTP_PASSWORD}
      from: "Incident alerts <alerts@example.org>"
      timeout: 5s
subscribers:
  inline:
    - {id: dr-ahmed, name: Dr Sara Ahmed, roles: [clinician], nations: [wales], phone: "+447400123401", email: sara.ahmed@example.org}
    - {id: dr-bowen, name: Dr Rhys Bowen, roles: [clinician], nations: [wales], email: rhys.bowen@example.org}
    - {id: dr-chen, name: Dr Li Chen, roles: [clinician], nations: [wales], phone: "+447400123403", email: li.chen@example.org}
    - {id: dr-davies, name: Dr Gwen Davies, roles: [clinician], nations: [wales], phone: "+447400123404", email: gwen.davies@example.org}
    - {id: duty-manager, name: Duty manager, roles: [deputy], nations: [wales], email: duty.manager@example.org}
audiences:
  clinicians:
    roles: [clinician]
    incident_nations: true
  deputies:
    roles: [deputy]
alerts:
  clinicians-sms:
    min_severity: major
    audience: clinicians
    channels: [clinician-sms]
    ack:
      within: 15m
      escalate: [clinician-email]
      deputy: deputies
`

const ackE2ESecret = "ack-e2e-secret-0123456789abcdef0123456789"

// ackE2E is the running installation.
type ackE2E struct {
	*harness
	twilio *channeltest.TwilioPeer
	smtp   *channeltest.SMTPPeer
	srv    *serverRun
	st     *store.Store // the test's own view of the database
	app    *app         // a second process on the same database, to run the escalator on demand
}

func newAckE2E(t *testing.T) *ackE2E {
	t.Helper()
	tw := channeltest.NewTwilioPeer(t)
	sm := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", smtpPassword))
	yaml := strings.NewReplacer("@@TWILIO_ACCOUNT_SID@@", tw.AccountSID, "@@TWILIO_FROM@@", tw.From, "@@TWILIO_URL@@", tw.URL,
		"@@SMTP_PORT@@", strconv.Itoa(sm.Port)).Replace(ackE2EConfig)
	h := newHarness(t, yaml)
	h.setenv("TWILIO_AUTH_TOKEN", tw.AuthToken)
	h.setenv("SMTP_PASSWORD", smtpPassword)
	h.setenv("ACK_SECRET", ackE2ESecret)
	x := &ackE2E{harness: h, twilio: tw, smtp: sm}
	x.srv = startServe(t, h)
	var out, errb syncBuffer
	a, err := openApp(context.Background(), h.config, h.env(&out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	x.app, x.st = a, a.st
	return x
}

// at moves the fake clock to testEpoch + d.
func (x *ackE2E) at(d time.Duration) { x.setNow(testEpoch().Add(d)) }

// escalate runs one escalation pass at the fake clock's time, as crier
// serve does every 15 seconds and after a receipt. The server may have
// run the same pass first (it is woken by the status callback): the test
// checks what is in the database, never which process did it.
func (x *ackE2E) escalate() {
	x.t.Helper()
	if _, err := x.app.escalate(context.Background()); err != nil {
		x.t.Fatalf("escalate: %v", err)
	}
}

// has reports which of the named deliveries of a trigger exist.
func (x *ackE2E) has(key string, names ...string) []bool {
	x.t.Helper()
	ds := x.deliveries(key)
	out := make([]bool, len(names))
	for i, n := range names {
		_, out[i] = ds[n]
	}
	return out
}

// deliveries reads the deliveries of a trigger by subscriber/channel.
func (x *ackE2E) deliveries(key string) map[string]store.AckDelivery {
	x.t.Helper()
	tr, ok, err := x.st.TriggerByKey(context.Background(), key)
	if err != nil || !ok {
		x.t.Fatalf("trigger %s: %v %v", key, ok, err)
	}
	dels, err := x.st.AckDeliveries(context.Background(), tr.ID)
	if err != nil {
		x.t.Fatal(err)
	}
	out := map[string]store.AckDelivery{}
	for _, d := range dels {
		out[d.SubscriberID+"/"+d.Channel] = d
	}
	return out
}

// waitSent waits (bounded) until the server has sent every named delivery.
func (x *ackE2E) waitSent(key string, names ...string) map[string]store.AckDelivery {
	x.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := x.deliveries(key)
		done := true
		for _, n := range names {
			if ds[n].Status != store.StatusSent {
				done = false
			}
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("not all of %v were sent within 20s: %+v\nserver log:\n%s", names, ds, x.srv.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// twilioPost posts a form signed as Twilio signs it (over the public URL,
// never the address the server happens to listen on).
func (x *ackE2E) twilioPost(path, query string, form url.Values) (int, string) {
	x.t.Helper()
	signed := "http://127.0.0.1:8080" + path
	target := x.srv.base + path
	if query != "" {
		signed += "?" + query
		target += "?" + query
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range form {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	b.WriteString(signed)
	for _, k := range keys {
		b.WriteString(k + form.Get(k))
	}
	mac := hmac.New(sha1.New, []byte(x.twilio.AuthToken))
	mac.Write([]byte(b.String()))
	req, _ := http.NewRequest("POST", target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return x.send(req)
}

func (x *ackE2E) send(req *http.Request) (int, string) {
	x.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// emailTo returns the text and HTML parts of the emails the SMTP peer got for rcpt.
func (x *ackE2E) emailTo(rcpt string) (texts, htmls []string) {
	x.t.Helper()
	for _, m := range x.smtp.Messages() {
		if !slices.Contains(m.To, rcpt) {
			continue
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			x.t.Fatal(err)
		}
		_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			var r io.Reader = p
			switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
			case "quoted-printable":
				r = quotedprintable.NewReader(p)
			case "base64":
				r = base64.NewDecoder(base64.StdEncoding, p)
			}
			b, _ := io.ReadAll(r)
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				htmls = append(htmls, string(b))
			} else {
				texts = append(texts, string(b))
			}
		}
	}
	return texts, htmls
}

var ackLinkRE = regexp.MustCompile(`http://127\.0\.0\.1:8080(/ack/[A-Za-z0-9_-]+)`)

// ackReport is crier acks --json as the test reads it.
type ackReport struct {
	Trigger      string    `json:"trigger"`
	Within       string    `json:"within"`
	Needed       int       `json:"needed"`
	Acknowledged int       `json:"acknowledged"`
	QuorumMet    bool      `json:"quorum_met"`
	State        string    `json:"state"`
	Deputy       string    `json:"deputy"`
	DeputyTrig   string    `json:"deputy_trigger"`
	DeputyToldAt time.Time `json:"deputy_told_at"`
	DeputyDels   []struct {
		Subscriber, Channel, Status string
	} `json:"deputy_deliveries"`
	Recipients []struct {
		Subscriber   string `json:"subscriber"`
		Acknowledged bool   `json:"acknowledged"`
		Ack          *struct {
			At     time.Time `json:"at"`
			Via    string    `json:"via"`
			Detail string    `json:"detail"`
		} `json:"ack"`
		Rungs []struct {
			ID             int64     `json:"id"`
			Escalates      int64     `json:"escalates"`
			Channel        string    `json:"channel"`
			Status         string    `json:"status"`
			Reason         string    `json:"reason"`
			ProviderStatus string    `json:"provider_status"`
			ErrorCode      string    `json:"error_code"`
			At             time.Time `json:"at"`
			Escalation     string    `json:"escalation"`
		} `json:"rungs"`
		DeputyToldAt time.Time `json:"deputy_told_at"`
		Pending      string    `json:"pending"`
	} `json:"recipients"`
}

func TestE2E_Acks_FakeClock(t *testing.T) {
	x := newAckE2E(t)
	const alert = "incident:INC-1:1"
	x.mustRun("incident", "open", "--title", "111 clinical system down", "--severity", "critical",
		"--impact", "Referrals@wales=outage:phone the duty clinician")

	// 10:00: the alert goes out by SMS to the three with a mobile number.
	ds := x.waitSent(alert, "dr-ahmed/clinician-sms", "dr-chen/clinician-sms", "dr-davies/clinician-sms")
	if b := ds["dr-bowen/clinician-sms"]; b.Status != store.StatusSuppressed || b.Reason != "no_address" {
		t.Fatalf("dr-bowen's SMS is %s/%s, want suppressed/no_address", b.Status, b.Reason)
	}
	for _, rq := range x.twilio.Requests() {
		if !strings.Contains(rq.Body, "Reply ACK by 10:15 to confirm.") {
			t.Errorf("the SMS to %s does not ask for an ACK by 10:15:\n%s", rq.To, rq.Body)
		}
	}
	// The first escalation pass reaches dr-bowen by email at once.
	x.escalate()
	if got := x.has(alert, "dr-bowen/clinician-email", "dr-chen/clinician-email"); !got[0] || got[1] {
		t.Fatalf("first pass: emails to dr-bowen and dr-chen exist: %v, want dr-bowen's only", got)
	}
	x.waitSent(alert, "dr-bowen/clinician-email")

	// 10:01: dr-chen's SMS comes back undelivered; escalated to email at once.
	x.at(time.Minute)
	chen := ds["dr-chen/clinician-sms"]
	code, body := x.twilioPost("/webhooks/twilio/status", fmt.Sprintf("d=%d", chen.ID), url.Values{"MessageSid": {chen.ProviderID}, "MessageStatus": {"undelivered"},
		"ErrorCode": {"30006"}, "AccountSid": {x.twilio.AccountSID}, "To": {"+447400123403"}, "From": {x.twilio.From}})
	if code != http.StatusNoContent {
		t.Fatalf("status callback: %d %q", code, body)
	}
	x.escalate()
	if got := x.has(alert, "dr-chen/clinician-email", "dr-davies/clinician-email"); !got[0] || got[1] {
		t.Fatalf("after the undelivered receipt: emails to dr-chen and dr-davies exist: %v, want dr-chen's only", got)
	}
	x.waitSent(alert, "dr-chen/clinician-email")

	// 10:02: dr-ahmed replies ACK.
	x.at(2 * time.Minute)
	code, body = x.twilioPost("/webhooks/twilio/inbound", "", url.Values{"MessageSid": {"SMin0001"}, "From": {"+447400123401"}, "To": {x.twilio.From},
		"Body": {"ACK"}, "AccountSid": {x.twilio.AccountSID}})
	if code != http.StatusOK {
		t.Fatalf("inbound ACK: %d %q", code, body)
	}

	// 10:03: dr-bowen opens the email link (a GET acknowledges nothing),
	// then presses Confirm.
	x.at(3 * time.Minute)
	texts, htmls := x.emailTo("rhys.bowen@example.org")
	if len(texts) != 1 || len(htmls) != 1 {
		t.Fatalf("dr-bowen got %d text and %d HTML parts, want one email", len(texts), len(htmls))
	}
	m := ackLinkRE.FindStringSubmatch(texts[0])
	if m == nil || !strings.Contains(htmls[0], m[0]) || !strings.Contains(texts[0], "ACTION REQUIRED") {
		t.Fatalf("dr-bowen's email has no acknowledgement link in both parts:\n%s", texts[0])
	}
	get, _ := http.NewRequest("GET", x.srv.base+m[1], nil)
	if code, page := x.send(get); code != http.StatusOK || !strings.Contains(page, "Confirm acknowledgement") {
		t.Fatalf("GET link: %d\n%s", code, page)
	}
	x.escalate()
	if tr, _, _ := x.st.TriggerByKey(context.Background(), alert); true {
		if acks, err := x.st.Acks(context.Background(), tr.ID); err != nil || len(acks) != 1 || acks["dr-ahmed"].Via != "sms" {
			t.Fatalf("after dr-ahmed's ACK reply and dr-bowen's GET: acks %+v (%v), want dr-ahmed's by sms only", acks, err)
		}
	}
	post, _ := http.NewRequest("POST", x.srv.base+m[1], nil)
	if code, page := x.send(post); code != http.StatusOK || !strings.Contains(page, "Acknowledged") {
		t.Fatalf("POST link: %d\n%s", code, page)
	}

	// 10:15: dr-davies has not answered: escalated to email.
	x.at(15 * time.Minute)
	x.escalate()
	if got := x.has(alert, "dr-davies/clinician-email", "dr-ahmed/clinician-email"); !got[0] || got[1] {
		t.Fatalf("at 10:15: emails to dr-davies and dr-ahmed exist: %v, want dr-davies's only", got)
	}
	if _, told, _ := x.st.TriggerByKey(context.Background(), store.DeputyKey(alert)); told {
		t.Fatal("the deputies were told at 10:15")
	}
	x.waitSent(alert, "dr-davies/clinician-email")

	// 10:30: the email rungs have had their 15 minutes: the deputies are
	// told once, about dr-chen and dr-davies.
	x.at(30 * time.Minute)
	x.escalate()
	x.waitSent(store.DeputyKey(alert), "duty-manager/clinician-email")
	before, deputies := len(x.deliveries(alert)), len(x.deliveries(store.DeputyKey(alert)))
	x.escalate()
	if len(x.deliveries(alert)) != before || len(x.deliveries(store.DeputyKey(alert))) != deputies {
		t.Fatal("a second pass at 10:30 planned more")
	}
	dtexts, _ := x.emailTo("duty.manager@example.org")
	if len(dtexts) != 1 || !strings.Contains(dtexts[0], "Dr Li Chen (dr-chen)") || !strings.Contains(dtexts[0], "Dr Gwen Davies (dr-davies)") ||
		strings.Contains(dtexts[0], "dr-ahmed") || strings.Contains(dtexts[0], "/ack/") {
		t.Fatalf("the deputies' email does not name exactly who did not acknowledge:\n%s", dtexts)
	}

	x.checkReport(t, alert)
}

// checkReport runs crier acks and checks it shows exactly the story.
func (x *ackE2E) checkReport(t *testing.T, alert string) {
	t.Helper()
	r := x.mustRun("acks", "--incident", "INC-1", "--json")
	var reps []ackReport
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 {
		t.Fatalf("crier acks --json: %v\n%s", err, r.stdout)
	}
	rep := reps[0]
	if rep.Trigger != alert || rep.Within != "15m" || rep.Needed != 4 || rep.Acknowledged != 2 || rep.QuorumMet || rep.State != "escalated" ||
		rep.Deputy != "deputies" || rep.DeputyTrig != store.DeputyKey(alert) || !rep.DeputyToldAt.Equal(testEpoch().Add(30*time.Minute)) {
		t.Errorf("policy: %+v", rep)
	}
	if len(rep.DeputyDels) != 2 {
		t.Errorf("deputy deliveries %+v, want the duty manager's email (sent) and SMS (no address)", rep.DeputyDels)
	}
	for _, d := range rep.DeputyDels {
		if d.Subscriber != "duty-manager" || (d.Channel == "clinician-email") != (d.Status == "sent") {
			t.Errorf("deputy delivery %+v", d)
		}
	}
	type rung struct{ channel, status, provider, code, why string }
	want := map[string]struct {
		via    string
		at     time.Duration
		rungs  []rung
		deputy bool
	}{
		"dr-ahmed": {"sms", 2 * time.Minute, []rung{{"clinician-sms", "sent", "", "", ""}}, false},
		"dr-bowen": {"email", 3 * time.Minute, []rung{{"clinician-sms", "suppressed", "", "", ""},
			{"clinician-email", "sent", "", "", "escalated: not sent (no_address)"}}, false},
		"dr-chen": {"", 0, []rung{{"clinician-sms", "failed", "undelivered", "30006", ""},
			{"clinician-email", "sent", "", "", "escalated: undelivered (30006)"}}, true},
		"dr-davies": {"", 0, []rung{{"clinician-sms", "sent", "", "", ""},
			{"clinician-email", "sent", "", "", "escalated: not acknowledged within 15m"}}, true},
	}
	if len(rep.Recipients) != len(want) {
		t.Fatalf("%d recipients, want %d: %+v", len(rep.Recipients), len(want), rep.Recipients)
	}
	for _, p := range rep.Recipients {
		w, ok := want[p.Subscriber]
		if !ok {
			t.Errorf("unexpected recipient %s", p.Subscriber)
			continue
		}
		if p.Acknowledged != (w.via != "") || (p.Ack != nil) != (w.via != "") {
			t.Errorf("%s: acknowledged %v, want %v", p.Subscriber, p.Acknowledged, w.via != "")
		}
		if p.Ack != nil && (p.Ack.Via != w.via || !p.Ack.At.Equal(testEpoch().Add(w.at))) {
			t.Errorf("%s: acknowledged %s at %s, want %s at %s", p.Subscriber, p.Ack.Via, p.Ack.At, w.via, testEpoch().Add(w.at))
		}
		if len(p.Rungs) != len(w.rungs) {
			t.Errorf("%s: rungs %+v, want %+v", p.Subscriber, p.Rungs, w.rungs)
			continue
		}
		for i, g := range p.Rungs {
			if wr := w.rungs[i]; g.Channel != wr.channel || g.Status != wr.status || g.ProviderStatus != wr.provider || g.ErrorCode != wr.code || g.Escalation != wr.why {
				t.Errorf("%s rung %d: %+v, want %+v", p.Subscriber, i, g, wr)
			}
			if i > 0 && g.Escalates != p.Rungs[i-1].ID {
				t.Errorf("%s rung %d escalates %d, want %d", p.Subscriber, i, g.Escalates, p.Rungs[i-1].ID)
			}
		}
		if p.DeputyToldAt.IsZero() == w.deputy {
			t.Errorf("%s: deputy told at %v, want told: %v", p.Subscriber, p.DeputyToldAt, w.deputy)
		}
		if p.Pending != "" {
			t.Errorf("%s: pending %q after everything was done", p.Subscriber, p.Pending)
		}
	}
	human := x.mustRun("acks", "--incident", "INC-1").stdout
	for _, s := range []string{"acknowledge within 15m", "2 acknowledged, not met", "state escalated", "deputy deputies (told",
		"undelivered 30006", "escalated: not acknowledged within 15m", "by sms", "by email"} {
		if !strings.Contains(human, s) {
			t.Errorf("crier acks lacks %q:\n%s", s, human)
		}
	}
	t.Logf("crier acks --incident INC-1:\n%s", human)
}

func TestCLI_Send_AckFlags(t *testing.T) {
	tw := channeltest.NewTwilioPeer(t)
	sm := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", smtpPassword))
	h := newHarness(t, strings.NewReplacer("@@TWILIO_ACCOUNT_SID@@", tw.AccountSID, "@@TWILIO_FROM@@", tw.From, "@@TWILIO_URL@@", tw.URL,
		"@@SMTP_PORT@@", strconv.Itoa(sm.Port)).Replace(ackE2EConfig))
	h.setenv("TWILIO_AUTH_TOKEN", tw.AuthToken)
	h.setenv("SMTP_PASSWORD", smtpPassword)
	h.setenv("ACK_SECRET", ackE2ESecret)
	base := []string{"send", "--audience", "clinicians", "--channels", "clinician-sms", "--body", "Use paper prescriptions", "--wait", "5s"}
	bad := []struct {
		name, want string
		flags      []string
	}{
		{"quorum without a time limit", "need --ack-within", []string{"--quorum", "2"}},
		{"too short", "--ack-within 30s is too short", []string{"--ack-within", "30s"}},
		{"unknown ladder channel", `--escalate: "pager" does not exist`, []string{"--ack-within", "15m", "--escalate", "pager"}},
		{"unknown deputy", `--deputy "bosses" does not exist`, []string{"--ack-within", "15m", "--deputy", "bosses"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(append(append([]string(nil), base...), tt.flags...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, tt.want)
			}
		})
	}
	if tw.Count() != 0 {
		t.Fatalf("a refused send sent %d SMS", tw.Count())
	}
	h.mustRun(append(base, "--key", "pads", "--ack-within", "20m", "--quorum", "2", "--escalate", "clinician-email", "--deputy", "deputies")...)
	var out, errb syncBuffer
	a, err := openApp(context.Background(), h.config, h.env(&out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pols, err := a.st.AckPolicies(context.Background(), "")
	if err != nil || len(pols) != 1 {
		t.Fatalf("policies %+v, %v", pols, err)
	}
	p := pols[0]
	if p.TriggerKey != "send:pads" || p.Within != 20*time.Minute || p.Quorum != 2 || !slices.Equal(p.Ladder, []string{"clinician-email"}) || p.Deputy != "deputies" {
		t.Errorf("policy %+v", p)
	}
	if n := tw.Count(); n != 3 {
		t.Fatalf("%d SMS sent, want 3", n)
	}
	for _, rq := range tw.Requests() {
		if !strings.HasPrefix(rq.Body, "Reply ACK by 10:20 to confirm.") {
			t.Errorf("SMS to %s: %q", rq.To, rq.Body)
		}
	}
}
