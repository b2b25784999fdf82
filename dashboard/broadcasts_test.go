package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/dashboard"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// sse reads server-sent events from a stream.
type sse struct {
	sc *bufio.Scanner
}

// next returns the next event's name and data; ok is false at the end
// of the stream.
func (s *sse) next() (name, data string, ok bool) {
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && name != "":
			return name, data, true
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	return "", "", false
}

type progressEvent struct {
	Total, Queued, Sent, Suppressed, Finished int
	Done                                      bool
	Channels                                  []struct {
		Channel string
		Sent    int
	}
}

func TestDashboard_BroadcastEvents_FollowProgressToTheEnd(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:events", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/broadcasts/%d/events", e.srv.URL, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	s := &sse{sc: bufio.NewScanner(resp.Body)}
	name, data, ok := s.next()
	var p progressEvent
	if !ok || name != "progress" || json.Unmarshal([]byte(data), &p) != nil {
		t.Fatalf("first event = %q %q %v", name, data, ok)
	}
	if p.Total != 4 || p.Queued != 3 || p.Suppressed != 1 || p.Finished != 1 || p.Done {
		t.Fatalf("first progress = %+v, want 3 queued and 1 suppressed of 4", p)
	}
	e.deliver(id) // the stream notices by itself
	name, data, ok = s.next()
	if !ok || name != "progress" || json.Unmarshal([]byte(data), &p) != nil {
		t.Fatalf("second event = %q %q %v", name, data, ok)
	}
	if p.Queued != 0 || p.Sent != 3 || p.Finished != 4 || !p.Done || len(p.Channels) != 1 || p.Channels[0].Sent != 3 {
		t.Errorf("progress after delivery = %+v", p)
	}
	if name, _, ok = s.next(); !ok || name != "done" {
		t.Errorf("after the last progress came %q (%v), want done", name, ok)
	}
	if name, _, ok = s.next(); ok {
		t.Errorf("the stream went on after done with %q", name)
	}
}

func TestDashboard_BroadcastEvents_OutliveTheServersTimeouts(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:long", 2)
	// crier serve has read and write timeouts for ordinary pages; a
	// stream must go on past them.
	const timeout = 100 * time.Millisecond
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/broadcasts/%d/events", srv.URL, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := &sse{sc: bufio.NewScanner(resp.Body)}
	if name, _, ok := s.next(); !ok || name != "progress" {
		t.Fatalf("first event %q %v", name, ok)
	}
	<-time.After(3 * timeout) // let both timeouts pass (not an assertion on speed)
	e.deliver(id)
	if name, data, ok := s.next(); !ok || name != "progress" || !strings.Contains(data, `"done":true`) {
		t.Errorf("after the server's timeouts the stream gave %q %q (%v), want the final progress", name, data, ok)
	}
}

func TestDashboard_BroadcastEvents_EndWhenTheDashboardCloses(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:closing", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/broadcasts/%d/events", e.srv.URL, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := &sse{sc: bufio.NewScanner(resp.Body)}
	if name, _, ok := s.next(); !ok || name != "progress" {
		t.Fatalf("first event %q %v", name, ok)
	}
	e.d.Close() // the server is shutting down
	if name, _, ok := s.next(); ok {
		t.Errorf("the stream went on after Close with %q", name)
	}
}

func TestDashboard_Broadcast_PageWorksWithoutScript(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:page", 2)
	code, _, body := e.get(fmt.Sprintf("/broadcasts/%d?ok=sent&n=2", id))
	if code != http.StatusOK {
		t.Fatalf("GET progress = %d", code)
	}
	mustContain(t, "a running broadcast's page", body, "Planned 2 messages", `data-state="running"`,
		`<noscript><meta http-equiv="refresh" content="5"></noscript>`, `href="/broadcasts/`+fmt.Sprint(id)+`">Refresh now`,
		`data-count="queued">2<`, `<progress id="bar" max="3" value="1"`)
	e.deliver(id)
	_, _, body = e.get(fmt.Sprintf("/broadcasts/%d", id))
	mustContain(t, "a finished broadcast's page", body, `data-state="done"`, "Finished: nothing is queued", `data-count="sent">2<`)
	if strings.Contains(body, "http-equiv=\"refresh\"") {
		t.Error("a finished broadcast's page still reloads itself")
	}
	for _, path := range []string{"/broadcasts/999", "/broadcasts/abc", "/broadcasts/999/events"} {
		if code, _, _ := e.get(path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	_, _, list := e.get("/broadcasts")
	mustContain(t, "the broadcasts page", list, `href="/broadcasts/`+fmt.Sprint(id)+`">broadcast “Test broadcast”`)
}

var keyRE = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`)

func TestDashboard_Compose_CheckThenSendOnce(t *testing.T) {
	e := newEnv(t)
	e.app.pf = dispatch.Preflight{Recipients: 2, Messages: 3, TotalSegments: 2, EstimatedCost: 0.08, Currency: "GBP",
		Channels:   map[string]*dispatch.ChannelPreflight{"sms": {Kind: "sms", Messages: 2, ByLocale: map[string]int{"en": 1, "cy": 1}, Segments: 2, Suppressed: 1}},
		Suppressed: []dispatch.Preview{{Subscriber: "dr-brennan", Channel: "sms", Reason: "no_address", Detail: "no phone"}},
		Samples:    []dispatch.Preview{{Channel: "sms", Locale: "cy", Text: "Neges <i>prawf</i>", Segments: 1}}}
	form := url.Values{"mode": {"broadcast"}, "audience": {"clinicians"}, "channels": {"sms", "forged", "sms"}, "subject": {" Hi "},
		"body": {"Referrals are down."}, "critical": {"1"}}
	code, _, body := e.post("/compose", form)
	if code != http.StatusOK {
		t.Fatalf("POST /compose = %d", code)
	}
	want := dashboard.Compose{Audience: "clinicians", Channels: []string{"sms"}, Subject: "Hi", Body: "Referrals are down.", Critical: true}
	if len(e.app.checked) != 1 || !reflect.DeepEqual(e.app.checked[0], want) {
		t.Errorf("pre-flight asked for %+v, want %+v (unknown and repeated channels dropped)", e.app.checked, want)
	}
	mustContain(t, "the pre-flight", body, "2 people, 3 messages", "cy 1, en 1", "0.08 GBP", "dr-brennan", "No address", "no phone",
		"Neges &lt;i&gt;prawf&lt;/i&gt;", "Send 3 messages to 2 people now")
	m := keyRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the pre-flight has no send button with a key")
	}
	e.app.outcome = dispatch.Outcome{TriggerID: 42, Created: true, Queued: 3}
	send := url.Values{"key": {m[1]}, "mode": {"broadcast"}, "audience": {"clinicians"}, "channels": {"sms"}, "subject": {"Hi"},
		"body": {"Referrals are down."}, "critical": {"1"}}
	code, loc, _ := e.post("/broadcasts", send)
	if code != http.StatusSeeOther || loc != "/broadcasts/42?ok=sent&n=3" {
		t.Fatalf("POST /broadcasts = %d to %q", code, loc)
	}
	want.Key = m[1]
	if len(e.app.sent) != 1 || !reflect.DeepEqual(e.app.sent[0], want) {
		t.Errorf("the app was asked to send %+v, want %+v", e.app.sent, want)
	}
	e.app.outcome.Created = false // the app saw the key before
	if _, loc, _ := e.post("/broadcasts", send); loc != "/broadcasts/42?ok=again&n=3" {
		t.Errorf("a second press redirects to %q, want the progress page saying it was not sent again", loc)
	}
	for _, key := range []string{"", "short", strings.Repeat("g", 24)} {
		send.Set("key", key)
		if code, _, _ := e.post("/broadcasts", send); code != http.StatusBadRequest {
			t.Errorf("POST /broadcasts with key %q = %d, want 400", key, code)
		}
	}
	if len(e.app.sent) != 2 {
		t.Errorf("the app was asked to send %d times, want 2 (bad keys refused before)", len(e.app.sent))
	}
}

// TestDashboard_Compose_Repeat: the pre-flight of a message identical to
// one sent within the repeat window says so and its button sends it
// again (repeat); a send the app answers with an earlier broadcast lands
// on that broadcast's progress, saying it was not sent again.
func TestDashboard_Compose_Repeat(t *testing.T) {
	e := newEnv(t)
	e.app.pf = dispatch.Preflight{Recipients: 2, Messages: 2, Channels: map[string]*dispatch.ChannelPreflight{"sms": {Kind: "sms", Messages: 2}}}
	earlier := &store.Trigger{Key: "send:0123456789ab-1", Kind: "send", Name: "Referrals", CreatedAt: t0.Add(-3 * time.Minute)}
	if err := e.st.Write(context.Background(), func(tx *store.Tx) error {
		_, err := tx.CreateTrigger(earlier)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.app.recent = earlier
	form := url.Values{"mode": {"broadcast"}, "audience": {"clinicians"}, "channels": {"sms"}, "body": {"Referrals are down."}}
	code, _, body := e.post("/compose", form)
	if code != http.StatusOK {
		t.Fatalf("POST /compose = %d", code)
	}
	mustContain(t, "the pre-flight of a repeat", body, "An identical message was sent 3 min ago", fmt.Sprintf(`href="/broadcasts/%d"`, earlier.ID),
		`name="repeat" value="1"`, "Send it again: 2 messages to 2 people now")
	m := keyRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the pre-flight has no send button with a key")
	}
	send := url.Values{"key": {m[1]}, "mode": {"broadcast"}, "audience": {"clinicians"}, "channels": {"sms"}, "body": {"Referrals are down."},
		"repeat": {"1"}}
	e.app.outcome = dispatch.Outcome{TriggerID: 8, Created: true, Queued: 2}
	if _, loc, _ := e.post("/broadcasts", send); loc != "/broadcasts/8?ok=sent&n=2" {
		t.Errorf("send it again redirects to %q", loc)
	}
	if got := e.app.sent[len(e.app.sent)-1]; !got.Repeat {
		t.Errorf("the app was asked to send %+v, want Repeat", got)
	}

	// Without the override, the app answers with the earlier broadcast.
	e.app.recent = nil
	if _, _, body := e.post("/compose", form); strings.Contains(body, `name="repeat"`) || strings.Contains(body, "identical") {
		t.Error("a pre-flight with no earlier identical message offers to send it again")
	}
	send.Del("repeat")
	e.app.outcome = dispatch.Outcome{TriggerID: earlier.ID, Queued: 2}
	e.app.repeatOf = earlier
	_, loc, _ := e.post("/broadcasts", send)
	if loc != fmt.Sprintf("/broadcasts/%d?ok=repeat&n=2", earlier.ID) {
		t.Fatalf("a repeat redirects to %q, want the earlier broadcast's progress", loc)
	}
	if got := e.app.sent[len(e.app.sent)-1]; got.Repeat {
		t.Errorf("the app was asked to send %+v, want no Repeat", got)
	}
	_, _, page := e.get(loc)
	mustContain(t, "the earlier broadcast's page", page, "An identical message was sent a short while ago", "was not sent again")
}

func TestDashboard_Compose_ProblemsAndBriefings(t *testing.T) {
	e := newEnv(t)
	var errs fields.List
	errs.Add("audience", "", "is required: one of clinicians, ministers")
	errs.Add("body", "", "is required: the message text")
	e.app.err = errs.Err()
	code, _, body := e.post("/compose", url.Values{"mode": {"broadcast"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /compose without audience = %d, want 422", code)
	}
	mustContain(t, "the refused compose page", body, `href="#f-audience">Audience: is required`, `href="#f-body">Message: is required`)
	if strings.Contains(body, `name="key"`) {
		t.Error("a refused broadcast offers a send button")
	}
	_, _, page := e.get("/compose?briefing=daily")
	mustContain(t, "the compose page for a briefing", page, `<option value="daily" selected>Daily report (to ministers)</option>`)
	e.app.pf = dispatch.Preflight{Recipients: 1, Messages: 1, Channels: map[string]*dispatch.ChannelPreflight{}}
	e.post("/compose", url.Values{"mode": {"briefing"}, "briefing": {"daily"}, "body": {"ignored"}})
	if got := e.app.checked[len(e.app.checked)-1]; !reflect.DeepEqual(got, dashboard.Compose{Briefing: "daily"}) {
		t.Errorf("a briefing's pre-flight asked for %+v", got)
	}
}
