package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// crowd adds n clinicians c0000… to st.
func crowd(tb testing.TB, st *store.Store, n int) {
	tb.Helper()
	people := make([]subscribers.Subscriber, n)
	for i := range people {
		people[i] = person(fmt.Sprintf("c%04d", i))
	}
	addSubscribers(tb, st, people...)
}

// subscriberRows counts the deliveries of trigger per subscriber.
func subscriberRows(tb testing.TB, st *store.Store, trigger string) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for k := range logRows(tb, st, trigger) {
		out[strings.SplitN(k, "/", 2)[0]]++
	}
	return out
}

// A large plan is committed a chunk at a time, whole subscribers per
// chunk, and the dispatcher can claim and send the first chunk while the
// rest is still being planned. Every subscriber ends with one delivery,
// sent once.
func TestPlanner_Plan_ChunksCommitWhilePlanning(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	crowd(t, st, 1000)
	var commits []int         // deliveries committed at each chunk
	var claimedEarly []string // what a claim between chunks got
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		FirstChunk: 50, ChunkSize: 300})
	p.onCommit = func() {
		c := counts(t, st)
		commits = append(commits, c[store.StatusQueued]+c[store.StatusSent])
		if len(commits) > 1 {
			return
		}
		// The writer is free between chunks: claim the first chunk and
		// record it as sent, as the dispatcher would.
		got, err := st.Claim(context.Background(), store.ClaimOptions{Channel: "sms", Limit: 10_000, Lease: time.Minute})
		if err != nil {
			t.Errorf("Claim between chunks: %v", err)
			return
		}
		var res []store.Result
		for _, c := range got {
			claimedEarly = append(claimedEarly, c.SubscriberID)
			res = append(res, store.Result{ID: c.ID, Status: store.StatusSent, ProviderID: "early-" + c.SubscriberID})
		}
		if err := st.Record(context.Background(), res); err != nil {
			t.Errorf("Record between chunks: %v", err)
		}
	}
	out := plan(t, p, st, message("send:chunked", "clinicians", "sms"))
	if out.Queued != 1000 || !out.Created || out.Failed != 0 {
		t.Fatalf("outcome %+v, want 1000 queued", out)
	}
	// 50, then doubling up to 300 at a time; the last chunk commits with
	// the end of planning and calls nobody.
	want := []int{50, 150, 350, 650, 950}
	if fmt.Sprint(commits) != fmt.Sprint(want) {
		t.Errorf("deliveries committed at each chunk = %v, want %v", commits, want)
	}
	if len(claimedEarly) != 50 || claimedEarly[0] != "c0000" || claimedEarly[49] != "c0049" {
		t.Errorf("claimed after the first chunk: %d deliveries (%v…), want c0000…c0049", len(claimedEarly), claimedEarly[:min(3, len(claimedEarly))])
	}
	tr := &store.Trigger{Key: "send:chunked"}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { _, err := tx.CreateTrigger(tr); return err }); err != nil {
		t.Fatal(err)
	}
	if !tr.PlanUntil.IsZero() || tr.PlanSpec != "" || tr.Planned != 1000 {
		t.Errorf("trigger after planning: until %v, spec %d bytes, planned %d; want finished with 1000", tr.PlanUntil, len(tr.PlanSpec), tr.Planned)
	}
	sms := newTestChannel("sms", channels.KindSMS, nil)
	drain(t, newDispatcher(st, clk, RetryPolicy{}, sms), clk, out.TriggerID)
	sent := sms.sent()
	if len(sent) != 950 {
		t.Errorf("the dispatcher sent to %d subscribers, want the 950 not sent between chunks", len(sent))
	}
	for k, n := range sent {
		if n != 1 || strings.Contains(k, "/c00") && k < "send:chunked/c0050" {
			t.Errorf("%s sent %d times", k, n)
		}
	}
	if c := counts(t, st); c[store.StatusSent] != 1000 || len(c) != 1 {
		t.Errorf("counts %v, want 1000 sent", c)
	}
}

// A process that dies part-way through a chunked plan leaves the chunks it
// committed and a record of the request: once its lease has run out, the
// plan is finished (after a restart, or by planning the same key again),
// each subscriber getting one delivery.
func TestPlanner_ResumePlans_AfterCrash(t *testing.T) {
	clk := newClock(t0)
	st, path := openStore(t, clk)
	crowd(t, st, 1000)
	ctx, crash := context.WithCancel(context.Background())
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		FirstChunk: 100, ChunkSize: 100})
	n := 0
	p.onCommit = func() {
		if n++; n == 3 {
			crash() // the process dies while planning the fourth chunk
		}
	}
	req := message("send:crash", "clinicians", "sms", "email")
	if _, err := p.Plan(ctx, st, req); err == nil {
		t.Fatal("Plan succeeded after the crash")
	}
	// Chunks count deliveries: 100 a chunk is 50 subscribers on two channels.
	if got := len(subscriberRows(t, st, "send:crash")); got != 150 {
		t.Fatalf("subscribers planned before the crash: %d, want the three chunks committed (150)", got)
	}
	// While the lease lasts, nobody else takes the plan over.
	again := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		FirstChunk: 100, ChunkSize: 100})
	if k, err := again.ResumePlans(context.Background(), st); err != nil || k != 0 {
		t.Fatalf("ResumePlans within the lease = %d, %v; want 0", k, err)
	}
	if out := plan(t, again, st, req); !out.Planning || out.Created || out.Queued != 300 {
		t.Errorf("planning the same key within the lease: %+v, want planning, 300 so far", out)
	}
	// After a restart, once the lease has run out, the plan is finished:
	// only the 850 subscribers its planner did not reach are planned.
	st.Close()
	st = openAt(t, path, clk)
	clk.Add(planLease + time.Second)
	if out := plan(t, again, st, req); !out.Created || out.Planning || out.Queued != 1700 {
		t.Fatalf("planning the key after the lease: %+v, want the remaining 1,700 deliveries planned", out)
	}
	rows := subscriberRows(t, st, "send:crash")
	if len(rows) != 1000 {
		t.Fatalf("subscribers planned after resuming: %d, want 1000", len(rows))
	}
	for sub, k := range rows {
		if k != 2 {
			t.Errorf("%s has %d deliveries, want one per channel", sub, k)
		}
	}
	for k, e := range logRows(t, st, "send:crash") {
		if e.Status != store.StatusQueued || !strings.Contains(e.Text, "paper prescriptions") {
			t.Errorf("%s: %s %q, want queued with the recorded message", k, e.Status, e.Text)
			break
		}
	}
	if k, err := again.ResumePlans(context.Background(), st); err != nil || k != 0 {
		t.Errorf("ResumePlans after finishing = %d, %v; want 0", k, err)
	}
	if out := plan(t, again, st, req); out.Planning || out.Created || out.Queued != 2000 {
		t.Errorf("planning the same key again: %+v, want done, 2000", out)
	}
}

// Before the first chunk commits, every template the audience's locales
// need is rendered once: a broken one stops the plan with nothing
// written. A template that fails only for one recipient's data, found
// after sending has begun, fails that recipient's delivery (logged, with
// the reason) instead of taking back what is already sent.
func TestPlanner_Plan_ChunkedRenderFailures(t *testing.T) {
	broken := map[string]string{"cy/message.tmpl": `{{define "message.sms.text"}}{{index .Impacts 3}}{{end}}`}
	dataDependent := map[string]string{"en/message.tmpl": `{{define "message.sms.text"}}{{if eq .RecipientID "c0900"}}{{index .Impacts 3}}{{end}}Hello {{.RecipientName}}{{end}}`}
	t.Run("broken before anything is committed", func(t *testing.T) {
		clk := newClock(t0)
		st, _ := openStore(t, clk)
		crowd(t, st, 1000)
		// The one Welsh speaker sorts last, far past the first chunk.
		addSubscribers(t, st, person("zed", func(s *subscribers.Subscriber) { s.Locale = "cy" }))
		p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, broken), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
			FirstChunk: 50, ChunkSize: 300})
		_, err := p.Plan(context.Background(), st, message("send:broken", "clinicians", "sms"))
		if err == nil || !strings.Contains(err.Error(), "zed") || !strings.Contains(err.Error(), "locale cy") || !strings.Contains(err.Error(), "nothing was sent") {
			t.Fatalf("Plan error %v, want one naming zed, locale cy and that nothing was sent", err)
		}
		if c := counts(t, st); len(c) != 0 {
			t.Errorf("deliveries after a failed plan: %v, want none", c)
		}
	})
	t.Run("broken for a language nobody in the audience reads", func(t *testing.T) {
		clk := newClock(t0)
		st, _ := openStore(t, clk)
		crowd(t, st, 300)
		addSubscribers(t, st, person("zed", func(s *subscribers.Subscriber) { s.Locale, s.Roles = "cy", []string{"manager"} }))
		p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, broken), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
			FirstChunk: 50, ChunkSize: 300})
		if out := plan(t, p, st, message("send:clinicians", "clinicians", "sms")); out.Queued != 300 {
			t.Errorf("outcome %+v, want the 300 clinicians queued", out)
		}
	})
	t.Run("one recipient's data, after the first chunk", func(t *testing.T) {
		clk := newClock(t0)
		st, _ := openStore(t, clk)
		crowd(t, st, 1000)
		p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, dataDependent), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
			FirstChunk: 50, ChunkSize: 300})
		out := plan(t, p, st, message("send:late", "clinicians", "sms"))
		if out.Queued != 999 || out.Failed != 1 || len(out.Errors) != 1 || !strings.Contains(out.Errors[0], "c0900") {
			t.Fatalf("outcome %+v, want 999 queued and c0900 failed with its error", out)
		}
		e := logRows(t, st, "send:late")["c0900/sms"]
		if e.Status != store.StatusFailed || e.Reason != "render_error" || !strings.Contains(e.Detail, "index") {
			t.Errorf("c0900's delivery: %s %s %q, want failed render_error naming the template error", e.Status, e.Reason, e.Detail)
		}
		if e := logRows(t, st, "send:late")["c0901/sms"]; e.Status != store.StatusQueued || e.Text != "Hello Person c0901" {
			t.Errorf("c0901's delivery: %s %q, want queued", e.Status, e.Text)
		}
	})
}

// A planner that stalls past its lease is overtaken: another process
// finishes the plan, and the stalled one, on its next commit, finds the
// plan taken and stops, writing nothing more and leaving the finished plan
// (and its count) as the other left it.
func TestPlanner_Plan_OvertakenAfterItsLease(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	crowd(t, st, 1000)
	req := message("send:stalled", "clinicians", "sms", "email")
	opts := PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		FirstChunk: 100, ChunkSize: 100}
	slow, other := NewPlanner(opts), NewPlanner(opts)
	var overtaken Outcome
	n := 0
	slow.onCommit = func() {
		if n++; n != 2 {
			return
		}
		// The slow planner stalls here, between two chunks, for longer
		// than its lease; another process finishes the plan meanwhile.
		clk.Add(planLease + time.Second)
		overtaken = plan(t, other, st, req)
	}
	_, err := slow.Plan(context.Background(), st, req)
	if !errors.Is(err, store.ErrPlanTaken) {
		t.Fatalf("the stalled planner's Plan: %v, want ErrPlanTaken", err)
	}
	if !overtaken.Created || overtaken.Queued != 1800 {
		t.Errorf("the other planner's outcome %+v, want the remaining 1,800 deliveries", overtaken)
	}
	rows := subscriberRows(t, st, "send:stalled")
	if len(rows) != 1000 {
		t.Errorf("%d subscribers planned, want 1000", len(rows))
	}
	for sub, k := range rows {
		if k != 2 {
			t.Errorf("%s has %d deliveries, want 2", sub, k)
		}
	}
	tr := &store.Trigger{Key: "send:stalled"}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { _, err := tx.CreateTrigger(tr); return err }); err != nil {
		t.Fatal(err)
	}
	if !tr.PlanUntil.IsZero() || tr.Planned != 2000 {
		t.Errorf("trigger after both: until %v, planned %d; want finished with 2000", tr.PlanUntil, tr.Planned)
	}
}
