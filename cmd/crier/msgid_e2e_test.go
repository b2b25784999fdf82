package main

import (
	"sync/atomic"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// TestE2E_Email_MessageIDPerInstallation: two installations (two
// databases, as a rebuilt server or a drill would have) send the same
// delivery, the same trigger key to the same subscriber over the same
// channel, to one SMTP server. It receives two Message-IDs, each the one
// its database logged. In the first installation the server's reply to
// the first copy is lost, so that delivery is sent again: the resend
// carries the Message-ID of its first copy.
func TestE2E_Email_MessageIDPerInstallation(t *testing.T) {
	var lost atomic.Bool
	sm := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", smtpPassword),
		channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
			if stage == channeltest.SMTPStageStored && lost.CompareAndSwap(false, true) {
				return channeltest.ErrSMTPDrop
			}
			return nil
		}))
	first, second := newE2EWith(t, sm), newE2EWith(t, sm)
	send := []string{"send", "--audience", "ministers", "--channels", "ministers-email", "--key", "drill-1",
		"--subject", "Paper processes", "--body", "Use paper prescriptions until further notice", "--wait", "10s"}
	first.cli(send...)
	second.cli(send...)

	msgs := sm.Messages()
	if len(msgs) != 3 {
		t.Fatalf("SMTP peer got %d messages, want 3 (a copy whose reply was lost, its resend, the other installation's)", len(msgs))
	}
	var ids, keys []string
	for _, m := range msgs {
		if m.Header == nil {
			t.Fatalf("a message header does not parse:\n%s", m.Data)
		}
		ids, keys = append(ids, m.Header.Get("Message-ID")), append(keys, m.Header.Get("X-Crier-Delivery"))
	}
	if keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("delivery keys %q: want one delivery key in both installations", keys)
	}
	if ids[0] == "" || ids[1] != ids[0] {
		t.Errorf("the resend has Message-ID %q, the first copy %q: want the same", ids[1], ids[0])
	}
	if ids[2] == ids[0] {
		t.Errorf("two installations gave delivery %q the same Message-ID %q", keys[0], ids[0])
	}
	rowA := first.bodies("send:drill-1")["minister-health/email"]
	rowB := second.bodies("send:drill-1")["minister-health/email"]
	if rowA.Status != "sent" || rowA.Attempts != 2 || rowA.ProviderID != ids[0] {
		t.Errorf("first installation's row: status %s after %d attempts, provider_id %q; want sent after 2 with %q", rowA.Status, rowA.Attempts, rowA.ProviderID, ids[0])
	}
	if rowB.Status != "sent" || rowB.Attempts != 1 || rowB.ProviderID != ids[2] {
		t.Errorf("second installation's row: status %s after %d attempts, provider_id %q; want sent after 1 with %q", rowB.Status, rowB.Attempts, rowB.ProviderID, ids[2])
	}
}
