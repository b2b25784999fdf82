package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/dashboard"
)

// broadcastAnswer is the part of POST /api/v1/broadcasts's answer the
// repeat tests read.
type broadcastAnswer struct {
	Trigger   string          `json:"trigger"`
	Created   bool            `json:"created"`
	Queued    int             `json:"queued"`
	Preflight json.RawMessage `json:"preflight"`
	RepeatOf  *struct {
		Trigger   string    `json:"trigger"`
		PlannedAt time.Time `json:"planned_at"`
		Window    string    `json:"window"`
		Message   string    `json:"message"`
	} `json:"repeat_of"`
}

// autoKey is the trigger key of a broadcast without a key.
var autoKey = regexp.MustCompile(`^send:[0-9a-f]{12}-[0-9]+$`)

// TestAPI_Broadcast_RepeatWindow: an identical broadcast without a key
// is planned once within broadcasts.repeat_window (10m in the example),
// whichever side of a minute boundary it falls; the second answer names
// the first and renders nothing. After the window, or with "repeat":
// true, it is planned again, under a new key.
func TestAPI_Broadcast_RepeatWindow(t *testing.T) {
	h, c := startAPI(t)
	post := func(body string, code int) broadcastAnswer {
		t.Helper()
		var a broadcastAnswer
		c.want(t, code, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: body}).json(t, &a)
		return a
	}
	at := func(d time.Duration) { h.setNow(testEpoch().Add(d)) }
	const bc = `{"audience":"ministers","channels":["ministers-email"],"subject":"Sitrep","body":"Paper referrals in Wales until 18:00."}`

	at(59*time.Second + 900*time.Millisecond) // 10:00:59.9
	first := post(bc, http.StatusCreated)
	if !first.Created || !strings.HasSuffix(first.Trigger, "-1") || !autoKey.MatchString(first.Trigger) || len(first.Preflight) == 0 || first.RepeatOf != nil {
		t.Fatalf("first broadcast: %+v, want created under send:<12 hex>-1 with its pre-flight", first)
	}
	planned := countDeliveries(t, c, "&trigger="+first.Trigger)

	for _, tc := range []struct {
		name string
		at   time.Duration
		body string
	}{
		{"across the minute boundary", time.Minute + 100*time.Millisecond, bc},
		{"channels listed again, white space around the text", 5 * time.Minute,
			`{"audience":"ministers","channels":["ministers-email","ministers-email"],"subject":" Sitrep","body":"Paper referrals in Wales until 18:00.\n"}`},
		{"at the end of the window", 10*time.Minute + 59*time.Second + 900*time.Millisecond, bc},
	} {
		at(tc.at)
		again := post(tc.body, http.StatusOK)
		if again.Created || again.Trigger != first.Trigger || again.RepeatOf == nil || again.RepeatOf.Trigger != first.Trigger || len(again.Preflight) != 0 {
			t.Fatalf("%s: %+v, want the first broadcast named as repeat_of and no pre-flight", tc.name, again)
		}
		if m := again.RepeatOf.Message; !strings.Contains(m, "not sent again") || !strings.Contains(m, `"repeat": true`) || again.RepeatOf.Window != "10m0s" {
			t.Errorf("%s: repeat_of %+v does not say it was not sent and how to send it anyway", tc.name, again.RepeatOf)
		}
	}
	if got := countDeliveries(t, c, ""); got != planned {
		t.Fatalf("%d deliveries after the repeats, want %d (planned once)", got, planned)
	}

	// Different content is a different broadcast.
	other := post(strings.Replace(bc, "Sitrep", "Sitrep 2", 1), http.StatusCreated)
	if other.Trigger == first.Trigger || !other.Created {
		t.Errorf("another subject: %+v, want a new broadcast", other)
	}
	// "repeat": true sends it again, under the content's next key.
	forced := post(strings.Replace(bc, `}`, `,"repeat":true}`, 1), http.StatusCreated)
	if !forced.Created || forced.Trigger != strings.TrimSuffix(first.Trigger, "1")+"2" || forced.RepeatOf != nil {
		t.Errorf("repeat true: %+v, want created under %s2", forced, strings.TrimSuffix(first.Trigger, "1"))
	}
	// The window runs from the latest identical broadcast.
	at(10*time.Minute + 59*time.Second + 900*time.Millisecond + 10*time.Minute - time.Second)
	if a := post(bc, http.StatusOK); a.RepeatOf == nil || a.RepeatOf.Trigger != forced.Trigger {
		t.Errorf("9m59s after the repeat: %+v, want repeat_of %s", a, forced.Trigger)
	}
	at(10*time.Minute + 59*time.Second + 900*time.Millisecond + 10*time.Minute + time.Second)
	later := post(bc, http.StatusCreated)
	if !later.Created || later.Trigger != strings.TrimSuffix(first.Trigger, "1")+"3" {
		t.Errorf("10m01s after the last one: %+v, want a new broadcast -3", later)
	}
	for _, key := range []string{first.Trigger, forced.Trigger, later.Trigger} {
		if n := countDeliveries(t, c, "&trigger="+key); n != planned {
			t.Errorf("%s has %d deliveries, want %d", key, n, planned)
		}
	}

	// Refused: the override with a key, and a key of crier's own form.
	var e apiErrorBody
	c.want(t, http.StatusUnprocessableEntity, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator,
		body: strings.Replace(bc, `}`, `,"key":"k1","repeat":true}`, 1)}).json(t, &e)
	if e.Error.Field != "repeat" {
		t.Errorf("key with repeat: %+v, want field repeat", e.Error)
	}
	c.want(t, http.StatusUnprocessableEntity, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator,
		body: strings.Replace(bc, `}`, `,"key":"0123456789ab-7"}`, 1)}).json(t, &e)
	if e.Error.Field != "key" || !strings.Contains(e.Error.Message, "without a key") {
		t.Errorf("a key of crier's own form: %+v, want field key", e.Error)
	}
}

// TestAPI_Broadcast_ConcurrentIdentical: identical broadcasts without a
// key that arrive at once are planned once; every other answer names the
// one that was planned.
func TestAPI_Broadcast_ConcurrentIdentical(t *testing.T) {
	_, c := startAPI(t)
	const bc = `{"audience":"ministers","channels":["ministers-email"],"subject":"Now","body":"All at once."}`
	answers := postBurst(t, c.s, 12, bc, nil)
	var planned string
	for _, a := range answers {
		if a.code == http.StatusCreated {
			var b broadcastAnswer
			if err := json.Unmarshal(a.body, &b); err != nil {
				t.Fatal(err)
			}
			if planned != "" {
				t.Fatalf("planned twice: %s and %s", planned, b.Trigger)
			}
			planned = b.Trigger
		}
	}
	if planned == "" {
		t.Fatalf("nothing planned: %+v", answers)
	}
	for _, a := range answers {
		var b broadcastAnswer
		if err := json.Unmarshal(a.body, &b); err != nil {
			t.Fatal(err)
		}
		if a.code != http.StatusCreated && (a.code != http.StatusOK || b.RepeatOf == nil || b.RepeatOf.Trigger != planned) {
			t.Errorf("answer %d %s, want 200 naming %s", a.code, a.body, planned)
		}
	}
	if total, mine := countDeliveries(t, c, ""), countDeliveries(t, c, "&trigger="+planned); total != 4 || mine != 4 {
		t.Errorf("%d deliveries (%d of %s), want the 4 of one broadcast", total, mine, planned)
	}
}

// TestBroadcast_TwoProcesses_PlanOnce: two crier processes on one
// database (here two apps, which share no lock) sending the same message
// at once plan it once: both choose the same trigger key.
func TestBroadcast_TwoProcesses_PlanOnce(t *testing.T) {
	h := exampleHarness(t)
	var apps []*app
	for range 2 {
		a, err := openApp(context.Background(), h.config, h.env(&syncBuffer{}, &syncBuffer{}))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		apps = append(apps, a)
	}
	r := sendRequest{Audience: "ministers", Channels: []string{"ministers-email"}, Subject: "Sitrep", Body: "Twice at once."}
	var mu sync.Mutex
	var results []broadcastResult
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			res, err := apps[i%2].Send(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	wg.Wait()
	created := ""
	for _, res := range results {
		if res.Outcome.Created {
			if created != "" {
				t.Fatalf("planned twice: %s and %s", created, res.Outcome.Key)
			}
			created = res.Outcome.Key
		}
	}
	for _, res := range results {
		if !res.Outcome.Created && (res.RepeatOf == nil || res.RepeatOf.Key != created) {
			t.Errorf("answer %+v, want it to name %s", res, created)
		}
	}
	if rows := h.logRows(); len(rows) != 4 || rows[0].Trigger != created {
		t.Errorf("%d deliveries, want the 4 of %s", len(rows), created)
	}
}

// TestCLI_Send_Repeat: `crier send` without --key says an identical
// message within the window was not sent again, and how to send it
// anyway; --repeat does; --repeat with --key and a key of crier's own
// form are refused.
func TestCLI_Send_Repeat(t *testing.T) {
	h := exampleHarness(t)
	args := []string{"send", "--audience", "ministers", "--channels", "ministers-email", "--subject", "Paper processes",
		"--body", "Use paper prescriptions until further notice", "--wait", "5s"}
	h.setNow(testEpoch().Add(59 * time.Second))
	first := h.mustRun(args...)
	rows := h.logRows()
	m := regexp.MustCompile(`under trigger (send:[0-9a-f]{12}-1)\n`).FindStringSubmatch(first.stdout)
	if m == nil || len(rows) == 0 {
		t.Fatalf("first send: %d deliveries, stdout:\n%s", len(rows), first.stdout)
	}
	h.setNow(testEpoch().Add(61 * time.Second))
	again := h.mustRun(args...)
	for _, want := range []string{"identical to " + m[1] + " sent at 2026-11-25 10:00:59 UTC", "not sent again", "use --repeat to send it anyway"} {
		if !strings.Contains(again.stdout, want) {
			t.Errorf("second send's stdout lacks %q:\n%s", want, again.stdout)
		}
	}
	if got := len(h.logRows()); got != len(rows) {
		t.Fatalf("%d deliveries after the second send, want %d", got, len(rows))
	}
	forced := h.mustRun(append(args, "--repeat")...)
	if !strings.Contains(forced.stdout, "under trigger "+strings.TrimSuffix(m[1], "1")+"2") {
		t.Errorf("send --repeat:\n%s", forced.stdout)
	}
	if got := len(h.logRows()); got != 2*len(rows) {
		t.Errorf("%d deliveries after --repeat, want %d", got, 2*len(rows))
	}
	for _, bad := range [][]string{{"--repeat", "--key", "k1"}, {"--key", "0123456789ab-3"}} {
		r := h.run(append(args, bad...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--") {
			t.Errorf("send %v: exit %d, stderr %q; want a usage error", bad, r.code, r.stderr)
		}
	}
}

// TestDashboard_Broadcast_Repeat: the dashboard's send button is held to
// the same window (a message identical to one sent from the CLI is not
// sent again), its "send it again" plans once however often it is
// pressed, and the pre-flight page is told of the earlier one.
func TestDashboard_Broadcast_Repeat(t *testing.T) {
	h := exampleHarness(t)
	h.mustRun("send", "--audience", "ministers", "--channels", "ministers-email", "--subject", "Referrals", "--body", "Paper referrals.", "--wait", "5s")
	a, err := openApp(context.Background(), h.config, h.env(&syncBuffer{}, &syncBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	d, ctx := dashApp{a}, context.Background()
	c := dashboard.Compose{Audience: "ministers", Channels: []string{"ministers-email"}, Subject: "Referrals", Body: "Paper referrals.", Key: "0123456789abcdef01"}
	earlier, err := d.RepeatOf(ctx, c)
	if err != nil || earlier == nil || !autoKey.MatchString(earlier.Key) {
		t.Fatalf("RepeatOf: %+v, %v; want the CLI's broadcast", earlier, err)
	}
	sent, err := d.Broadcast(ctx, c)
	if err != nil || sent.RepeatOf == nil || sent.RepeatOf.Key != earlier.Key || sent.Created {
		t.Fatalf("send without repeat: %+v, %v; want it answered by %s", sent, err, earlier.Key)
	}
	c.Repeat = true
	for press := range 2 {
		sent, err = d.Broadcast(ctx, c)
		if err != nil || sent.RepeatOf != nil || sent.Key != "send:dashboard-"+c.Key || sent.Created != (press == 0) {
			t.Fatalf("send it again, press %d: %+v, %v", press+1, sent, err)
		}
	}
	if got := len(h.logRows()); got != 8 {
		t.Errorf("%d deliveries, want 4 from the CLI and 4 from the dashboard", got)
	}
}
