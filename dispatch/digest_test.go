package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// TestPlanner_Plan_CapFoldsExcessIntoDigest: with a cap of 2 SMS an hour,
// the third and fourth messages within the hour are not sent on their own:
// they are suppressed (reason capped) and one digest listing both goes out
// when the window ends. Critical messages are never capped.
func TestPlanner_Plan_CapFoldsExcessIntoDigest(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 15, 14, 5, 0, 0, time.UTC))
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"))
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		Rules: map[string]ChannelRules{"sms": {CapMax: 2, CapWindow: time.Hour}}})
	sms := newTestChannel("sms", channels.KindSMS, nil)
	d := newDispatcher(st, clk, RetryPolicy{}, sms)
	var triggers []int64
	for i := 1; i <= 4; i++ {
		req := message(fmt.Sprintf("send:%d", i), "everyone", "sms")
		req.Subject, req.Body = fmt.Sprintf("Notice %d", i), fmt.Sprintf("BODY%d use paper prescriptions", i)
		out := plan(t, p, st, req)
		triggers = append(triggers, out.TriggerID)
		clk.Add(time.Minute)
	}
	crit := message("send:critical", "everyone", "sms")
	crit.Critical, crit.Body = true, "CRITICALBODY ambulance dispatch down"
	triggers = append(triggers, plan(t, p, st, crit).TriggerID)
	drain(t, d, clk)

	for i, want := range []string{"sent", "sent", "suppressed", "suppressed", "sent"} {
		key := fmt.Sprintf("send:%d", i+1)
		if i == 4 {
			key = "send:critical"
		}
		row := logRows(t, st, key)["ann/sms"]
		if row.Status != want {
			t.Errorf("%s: status %s (%s %s), want %s", key, row.Status, row.Reason, row.Detail, want)
		}
		if want == "suppressed" && (row.Reason != "capped" || !strings.Contains(row.Detail, "digest")) {
			t.Errorf("%s: reason %q detail %q, want capped and folded into the digest", key, row.Reason, row.Detail)
		}
	}
	var digest store.LogEntry
	err := st.Log(context.Background(), store.LogFilter{Kind: "sms", WithBody: true}, func(e *store.LogEntry) error {
		if e.TriggerKind == "digest" {
			digest = *e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if digest.ID == 0 || digest.Status != store.StatusQueued {
		t.Fatalf("digest = %+v, want one queued until the window ends", digest)
	}
	if !strings.HasPrefix(digest.Text, templates.DigestHeader("en")) || !strings.Contains(digest.Text, "Notice 3") || !strings.Contains(digest.Text, "Notice 4") ||
		strings.Contains(digest.Text, "Notice 1") {
		t.Fatalf("digest text:\n%s", digest.Text)
	}
	clk.Set(time.Date(2026, 1, 15, 15, 0, 0, 0, time.UTC))
	drain(t, d, clk)
	if got := logRows(t, st, digest.Trigger)["ann/sms"]; got.Status != store.StatusSent {
		t.Fatalf("digest after the window: %s, want sent", got.Status)
	}
	if n := len(sms.messages()); n != 4 {
		t.Fatalf("the channel sent %d messages, want 4 (2 within the cap, the critical one, the digest)", n)
	}
}
