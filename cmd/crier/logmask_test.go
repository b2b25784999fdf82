package main

import (
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// Real providers put the address in their refusals: Twilio's 21211 names
// the number, a Postfix 550 the mailbox. Those refusals reach crier's logs
// as the error of a failed delivery, so the masking must hold inside error
// texts too, not only in attributes named address.

// e2eAddresses are the recipients' addresses in testdata/e2e.yaml.
var e2eAddresses = []string{"+447400123402", "+447400123410", "+447400123411", "07400 123411",
	"alex.carter@health-minister.example.org", "aoife.brennan@hscni.example.org"}

func TestE2E_Logs_MaskAddressesInProviderErrors(t *testing.T) {
	const badPhone, badMail = "+447400123410", "alex.carter@health-minister.example.org"
	tw := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(_ int, form url.Values) *channeltest.TwilioResponse {
		if form.Get("To") == badPhone {
			return channeltest.TwilioError(400, 21211, "The 'To' number "+badPhone+" is not a valid phone number.")
		}
		return nil
	}))
	sm := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", smtpPassword), channeltest.SMTPHook(func(stage channeltest.SMTPStage, addr string) error {
		if stage == channeltest.SMTPStageRcpt && addr == badMail {
			return channeltest.SMTPReply(550, "5.1.1", "<"+addr+">: Recipient address rejected: User unknown in virtual mailbox table")
		}
		return nil
	}))
	sl := channeltest.NewSlackPeer(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "e2e.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("@@TWILIO_ACCOUNT_SID@@", tw.AccountSID, "@@TWILIO_FROM@@", tw.From, "@@TWILIO_URL@@", tw.URL,
		"@@SMTP_PORT@@", strconv.Itoa(sm.Port), "@@SLACK_URL@@", sl.URL).Replace(string(raw))
	h := newHarness(t, yaml)
	h.setenv("TWILIO_AUTH_TOKEN", tw.AuthToken)
	h.setenv("SLACK_BOT_TOKEN", sl.Token)
	h.setenv("SMTP_PASSWORD", smtpPassword)
	h.tick()

	var logs []string
	for _, args := range [][]string{
		{"incident", "open", "--title", "111 clinical system down", "--severity", "critical",
			"--impact", "Referrals@wales=outage:phone the duty clinician", "--wait", "10s"},
		{"brief", "ministers-daily", "--wait", "10s"},
	} {
		r := h.mustRun(args...)
		logs = append(logs, r.stderr, r.stdout)
	}
	all := strings.Join(logs, "\n")

	// The refusals happened and were logged: otherwise the check proves nothing.
	rows := h.logRows()
	failed := countBy(rows, func(r logRow) string { return r.Subscriber + "/" + r.Status + "/" + r.Reason })
	if failed["dr-morgan/failed/bad_address"] != 1 || failed["minister-health/failed/bad_address"] != 1 {
		t.Fatalf("the peers' refusals did not fail the deliveries: %v", failed)
	}
	if strings.Count(all, "delivery failed permanently") < 2 {
		t.Fatalf("crier logged fewer than two failed deliveries:\n%s", all)
	}
	if !strings.Contains(all, "21211") || !strings.Contains(all, "Recipient address rejected") {
		t.Fatalf("the providers' refusals are not in the log (so masking inside them is untested):\n%s", all)
	}
	assertNoAddresses(t, "crier's log", all, e2eAddresses)
}

func TestMaskInText_Cases(t *testing.T) {
	for _, c := range []struct {
		name string
		in   slog.Value
		want string
	}{
		{"twilio 21211", slog.StringValue("twilio: 21211: The 'To' number +447400123410 is not a valid phone number."),
			"twilio: 21211: The 'To' number *********3410 is not a valid phone number."},
		{"grouped number", slog.StringValue("to +44 7400 123410 refused"), "to *********3410 refused"},
		{"smtp 550 in an error", slog.AnyValue(errors.New("550 5.1.1 <alex.carter@health-minister.example.org>: Recipient address rejected")),
			"550 5.1.1 <a***@health-minister.example.org>: Recipient address rejected"},
		{"timestamps and ids stay", slog.StringValue("next_at 2026-11-25T10:00:00+00:00 delivery 1234567890 took 0.25s"),
			"next_at 2026-11-25T10:00:00+00:00 delivery 1234567890 took 0.25s"},
		{"plain text stays", slog.StringValue("channel paused"), "channel paused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := maskInText(c.in).String(); got != c.want {
				t.Errorf("maskInText(%q) = %q, want %q", c.in.String(), got, c.want)
			}
		})
	}
	if v := maskInText(slog.IntValue(447400123410)); v.Kind() != slog.KindInt64 {
		t.Errorf("an int attribute became %v", v.Kind())
	}
}
