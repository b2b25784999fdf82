package main

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/crier-dev/crier/templates"
)

// TestE2E_Marking_SensitiveTextNeverReachesSMSOrSlack: an
// OFFICIAL-SENSITIVE incident and a sensitive update go out over the real
// drivers. The Twilio and Slack peers (channels cleared for OFFICIAL)
// receive no sensitive text, only the notice that points to the email; the
// SMTP peer (cleared for OFFICIAL-SENSITIVE) gets the full text, marked.
func TestE2E_Marking_SensitiveTextNeverReachesSMSOrSlack(t *testing.T) {
	const summarySecret, updateSecret = "RANSOMDEMAND5M", "NEGOTIATORSENGAGED"
	x := newE2E(t)
	x.cli("incident", "open", "--title", "Helpline clinical system down", "--severity", "critical", "--marking", "OFFICIAL-SENSITIVE",
		"--summary", "Attackers demand payment "+summarySecret+"; do not share.",
		"--impact", "Referrals@wales=outage:phone the duty clinician", "--wait", "10s")
	x.cli("incident", "update", "INC-1", "--text", "Specialists "+updateSecret+" with the supplier.", "--text-marking", "OFFICIAL-SENSITIVE",
		"--status", "identified", "--wait", "10s")
	x.tick()
	x.cli("brief", "ministers-daily", "--wait", "10s")

	if n := x.twilio.Count(); n == 0 {
		t.Fatal("the Twilio peer received nothing: the test did not exercise SMS")
	}
	for _, r := range x.twilio.Requests() {
		for _, secret := range []string{summarySecret, updateSecret} {
			if strings.Contains(r.Body, secret) {
				t.Errorf("SMS to %s carries sensitive text %q:\n%s", r.To, secret, r.Body)
			}
		}
	}
	posts := x.slack.Posts()
	if len(posts) == 0 {
		t.Fatal("the Slack peer received nothing: the test did not exercise Slack")
	}
	notice := templates.WithheldNotice("en")
	sawNotice := false
	for _, p := range posts {
		all := p.AllText()
		for _, secret := range []string{summarySecret, updateSecret} {
			if strings.Contains(all, secret) {
				t.Errorf("Slack %s to %s carries sensitive text %q:\n%s", p.Method, p.Channel, secret, all)
			}
		}
		if strings.Contains(all, strings.Fields(notice)[0]) {
			sawNotice = true
		}
	}
	if !sawNotice {
		t.Errorf("no Slack post carries the withheld notice %q", notice)
	}
	msgs := x.smtp.Messages()
	if len(msgs) == 0 {
		t.Fatal("the SMTP peer received nothing")
	}
	for _, m := range msgs {
		body, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(m.Data)))
		text := strings.ReplaceAll(string(body), "\r\n", "\n")
		if !strings.Contains(text, summarySecret) || !strings.Contains(text, updateSecret) {
			t.Errorf("the briefing email to %v lacks the sensitive detail it is cleared for", m.To)
		}
		if !strings.Contains(text, "OFFICIAL-SENSITIVE") {
			t.Errorf("the briefing email to %v is not marked OFFICIAL-SENSITIVE", m.To)
		}
	}
	x.checkSecrets(t)
}
