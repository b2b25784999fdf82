package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store/storetest"
)

const clusterSessionSecret = "cluster-session-secret-0123456789abcdef"

// clusterHarness is the dashboard harness's config (an operator token, a
// slow sandbox email channel: one at a time, 1s each, with a rate, so one
// process at a time sends it) on the PostgreSQL database at dbURL, with a
// session secret: every harness made with the same dbURL is another crier
// server of one cluster.
func clusterHarness(t *testing.T, dbURL string) *harness {
	t.Helper()
	yaml := exampleYAML(t)
	for from, to := range map[string]string{
		"  url: sqlite:crier.db\n": "  url: ${CRIER_TEST_DATABASE_URL}\n",
		"  tokens: []\n": "  tokens:\n    - name: test-desk\n      role: operator\n      token: ${CRIER_TEST_TOKEN}\n" +
			"  session_secret: ${CRIER_TEST_SESSION_SECRET}\n",
		"    concurrency: 4\n    sandbox:\n      kind: email\n": "    concurrency: 1\n    rate: 5\n    sandbox:\n      kind: email\n      latency: 1s\n",
	} {
		if !strings.Contains(yaml, from) {
			t.Fatalf("the example config no longer has %q", from)
		}
		yaml = strings.Replace(yaml, from, to, 1)
	}
	h := newHarness(t, yaml)
	h.setenv("CRIER_TEST_DATABASE_URL", dbURL)
	h.setenv("CRIER_TEST_TOKEN", serveToken)
	h.setenv("CRIER_TEST_SESSION_SECRET", clusterSessionSecret)
	h.tick()
	return h
}

// progressEvent is one "progress" event of a dashboard progress stream.
type progressEvent struct {
	Total     int  `json:"total"`
	Queued    int  `json:"queued"`
	Sent      int  `json:"sent"`
	Delivered int  `json:"delivered"`
	Failed    int  `json:"failed"`
	Finished  int  `json:"finished"`
	Done      bool `json:"done"`
}

// TestCluster_Progress_AnyNode proves a broadcast planned through one
// crier serve and sent by its dispatcher is followed live on another crier
// serve on the same database, whose own dispatcher does not send that
// channel: its dashboard stream (with a session signed in on the first
// server) and its API show every delivery the first one sent, as it sends
// them; and the same broadcast sent again through the second is known as
// a repeat.
func TestCluster_Progress_AnyNode(t *testing.T) {
	dbURL := storetest.Postgres(t)
	a := startServe(t, clusterHarness(t, dbURL))
	// A takes the email channel's sender role before B starts, so B's
	// dispatcher runs but never sends it.
	waitFor(t, 15*time.Second, "node A to send the email channel", func() bool { return senderOf(t, a, "ministers-email") })
	b := startServe(t, clusterHarness(t, dbURL))
	if senderOf(t, b, "ministers-email") {
		t.Fatal("node B sends the email channel too")
	}

	// Sign in on A with the config token; the session is used on B.
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(a.base+"/signin", url.Values{"token": {serveToken}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == server.SessionCookie {
			session = c.Value
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == "" {
		t.Fatalf("sign-in on A: %d, session %v", resp.StatusCode, session != "")
	}

	code, _, body := a.call(t, "POST", "/api/v1/broadcasts", serveToken,
		`{"audience":"ministers","channels":["ministers-email"],"subject":"Ministers' call","body":"The call is at 15:00."}`, nil)
	var sent struct {
		TriggerID int64  `json:"trigger_id"`
		Key       string `json:"trigger"`
	}
	if err := json.Unmarshal(body, &sent); err != nil || code != http.StatusCreated || sent.TriggerID == 0 {
		t.Fatalf("POST /api/v1/broadcasts on A: %d %v %s", code, err, body)
	}

	// B's live progress stream, read until it says done.
	req, err := http.NewRequest("GET", fmt.Sprintf("%s/broadcasts/%d/events", b.base, sent.TriggerID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: server.SessionCookie, Value: session})
	stream, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(stream.Body)
		t.Fatalf("B's progress stream with A's session: %d %s", stream.StatusCode, b)
	}
	var events []progressEvent
	done := false
	sc := bufio.NewScanner(stream.Body)
	name := ""
	for !done && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && name == "progress":
			var p progressEvent
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &p); err != nil {
				t.Fatalf("progress event %q: %v", line, err)
			}
			events = append(events, p)
		case name == "done":
			done = true
		}
	}
	if !done || len(events) == 0 {
		t.Fatalf("B's stream ended without done (%v) after %d progress events", sc.Err(), len(events))
	}
	first, last := events[0], events[len(events)-1]
	if last.Total == 0 || last.Queued != 0 || last.Sent+last.Delivered == 0 || last.Finished != last.Total || !last.Done {
		t.Errorf("B's last progress event %+v, want everything finished and sent", last)
	}
	if len(events) < 2 || first.Queued == 0 {
		t.Errorf("B's stream showed %d progress events, the first %+v: want it to follow A's sends one at a time", len(events), first)
	}

	// B.s API says the same.
	code, _, body = b.call(t, "GET", "/api/v1/broadcasts/"+url.PathEscape(sent.Key), serveToken, "", nil)
	var p struct {
		Total  int            `json:"total"`
		Counts map[string]int `json:"counts"`
		Done   bool           `json:"done"`
	}
	if err := json.Unmarshal(body, &p); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/broadcasts/%s on B: %d %v %s", sent.Key, code, err, body)
	}
	if !p.Done || p.Total != last.Total || p.Counts["sent"]+p.Counts["delivered"] != last.Sent+last.Delivered {
		t.Errorf("B's API progress %+v, want done with the stream's counts %+v", p, last)
	}

	// The same broadcast without a key, sent again through B within the
	// repeat window, is recognised as A's and not sent again.
	code, _, body = b.call(t, "POST", "/api/v1/broadcasts", serveToken,
		`{"audience":"ministers","channels":["ministers-email"],"subject":"Ministers' call","body":"The call is at 15:00."}`, nil)
	var again struct {
		RepeatOf struct {
			Trigger string `json:"trigger"`
		} `json:"repeat_of"`
	}
	if err := json.Unmarshal(body, &again); err != nil || code != http.StatusOK || again.RepeatOf.Trigger != sent.Key {
		t.Errorf("the same broadcast again on B: %d %v %s; want 200 with repeat_of %s", code, err, body, sent.Key)
	}

	// The sends were A's: its metrics count them, B's count none.
	if got := sentCount(t, a); got != last.Sent+last.Delivered {
		t.Errorf("A's crier_deliveries_total{status=sent} = %d, want %d", got, last.Sent+last.Delivered)
	}
	if got := sentCount(t, b); got != 0 {
		t.Errorf("B's crier_deliveries_total{status=sent} = %d, want 0: B's dispatcher must not be the one sending", got)
	}
}

// senderOf reports whether the server says it sends channel
// (crier_channel_sender).
func senderOf(t *testing.T, s *serverRun, channel string) bool {
	t.Helper()
	code, _, body := s.call(t, "GET", "/metrics", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	return strings.Contains(string(body), `crier_channel_sender{channel="`+channel+`"} 1`+"\n")
}

// sentCount sums the server's crier_deliveries_total{status="sent"}.
func sentCount(t *testing.T, s *serverRun) int {
	t.Helper()
	code, _, body := s.call(t, "GET", "/metrics", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "crier_deliveries_total{") && strings.Contains(line, `status="sent"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			n += int(v)
		}
	}
	return n
}

// TestCluster_AuthOptions_SessionSecret proves where the key of
// config-token sessions comes from, and that a server on a shared
// database without one says that such sessions will not work on the
// other servers.
func TestCluster_AuthOptions_SessionSecret(t *testing.T) {
	const ackSecret = "ack-secret-for-the-cluster-test-0123456789"
	dbURL := storetest.Postgres(t)
	tests := []struct {
		name        string
		sqlite      bool
		session     bool
		ack         bool
		want        string
		wantWarning bool
	}{
		{"session_secret", false, true, true, clusterSessionSecret, false},
		{"ack_secret alone", false, false, true, ackSecret, false},
		{"neither, on PostgreSQL", false, false, false, "", true},
		{"neither, on SQLite", true, false, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := clusterHarness(t, dbURL)
			b, err := os.ReadFile(h.config)
			if err != nil {
				t.Fatal(err)
			}
			yaml := string(b)
			if !tt.session {
				yaml = strings.Replace(yaml, "  session_secret: ${CRIER_TEST_SESSION_SECRET}\n", "", 1)
			}
			if tt.ack {
				yaml = strings.Replace(yaml, "\nwebhooks:\n", "\nwebhooks:\n  ack_secret: ${CRIER_TEST_ACK_SECRET}\n", 1)
				h.setenv("CRIER_TEST_ACK_SECRET", ackSecret)
			}
			if tt.sqlite {
				yaml = strings.Replace(yaml, "  url: ${CRIER_TEST_DATABASE_URL}\n", "  url: sqlite:crier.db\n", 1)
			}
			h.write("config.yaml", yaml)
			var out, errb syncBuffer
			a, err := openApp(context.Background(), h.config, h.env(&out, &errb))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			o := a.authOptions()
			if got := o.SessionSecret.Reveal(); got != tt.want {
				t.Errorf("SessionSecret = %q, want %q", got, tt.want)
			}
			if warned := strings.Contains(errb.String(), "work only on the server that signed them in"); warned != tt.wantWarning {
				t.Errorf("warned %v, want %v:\n%s", warned, tt.wantWarning, errb.String())
			}
		})
	}
}
