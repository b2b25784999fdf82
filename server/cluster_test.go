package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// The web side on several crier servers sharing one PostgreSQL database
// behind a load balancer without sticky sessions. Each test builds two
// Servers in this process, each with a store of its own opened with
// store.OpenURL on the same PostgreSQL schema and each behind an HTTP
// listener of its own on 127.0.0.1, and sends one request to one node and
// the next to the other. Without CRIER_TEST_POSTGRES they are skipped.

const clusterSessionSecret = "session-secret-every-node-shares-0123456789"

// clusterNode is one crier server of the cluster. Its authEnv serves
// sign-in requests (req, signin, post); hooks sends it Twilio webhooks.
type clusterNode struct {
	*authEnv
	hooks *hooks
	inc   *holdIncidents
	mu    sync.Mutex
	acked []int64
}

// newCluster builds two nodes, A and B, on one new PostgreSQL schema.
func newCluster(t *testing.T) (a, b *clusterNode) {
	t.Helper()
	url := storetest.Postgres(t)
	var nodes []*clusterNode
	for range 2 {
		st, err := store.OpenURL(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // before storetest drops the schema
		n := &clusterNode{authEnv: &authEnv{t: t, st: st, clock: &authClock{t: time.Now()}}, inc: &holdIncidents{storeIncidents: storeIncidents{st}}}
		n.hooks = &hooks{t: t, st: st}
		n.s = New(Options{Incidents: n.inc, Store: st, MaxBody: 8192,
			Tokens: []Token{{Name: "cfg-ops", Role: "operator", Value: fields.Secret(authConfigToken)}},
			Auth:   &AuthOptions{Store: st, SessionSecret: clusterSessionSecret, SigninPerAddress: 3, SigninPerUser: 5},
			Acks: &AckOptions{Tokens: dispatch.NewAckSigner(ackTestSecret, time.Hour, ""), Store: st, SlackSigningSecret: fields.Secret(slackTestSecret),
				Acked: func(id int64) { n.mu.Lock(); n.acked = append(n.acked, id); n.mu.Unlock() }},
			Twilio: &TwilioOptions{AuthToken: fields.Secret(hookToken), PublicURL: publicURL, Store: st,
				Replies: SMSReplies{HelpText: "Help: reply ACK.", UnknownText: "Sorry, not understood."}},
			WebhookObserved: func(route, outcome string) {
				n.hooks.mu.Lock()
				defer n.hooks.mu.Unlock()
				n.hooks.observed = append(n.hooks.observed, route+" "+outcome)
			},
		})
		who := func(w http.ResponseWriter, r *http.Request) {
			p, ok := n.s.Principal(r)
			writeJSON(w, http.StatusOK, map[string]any{"ok": ok, "name": p.Name, "role": p.Role, "session": p.Session})
		}
		n.s.route("GET", "/test/whoami", "viewer", who)
		n.s.route("POST", "/test/act", "operator", who)
		n.srv = httptest.NewServer(n.s)
		t.Cleanup(n.srv.Close)
		n.hooks.srv = n.srv
		nodes = append(nodes, n)
	}
	return nodes[0], nodes[1]
}

// holdIncidents opens incidents in its node's store; while hold is set,
// OpenIncident says so on entered and waits for hold to close.
type holdIncidents struct {
	storeIncidents
	calls   atomic.Int32
	hold    chan struct{}
	entered chan struct{}
}

func (h *holdIncidents) OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error) {
	h.calls.Add(1)
	if h.hold != nil {
		h.entered <- struct{}{}
		select {
		case <-h.hold:
		case <-time.After(10 * time.Second): // a guard against a hung test, not an assertion
			return dispatch.IncidentResult{}, fmt.Errorf("never released")
		}
	}
	return h.storeIncidents.OpenIncident(ctx, c)
}

// TestCluster_Sessions_AnyNode proves a session signed in on one node
// (with a password, a database token or a config token) works on the
// other, CSRF token included, and that signing out, revoking the token or
// removing the user on one node ends it on the other.
func TestCluster_Sessions_AnyNode(t *testing.T) {
	a, b := newCluster(t)
	a.addUser("alice", "admin")
	dbTok := a.token("ci", "operator")
	ways := []struct {
		name string
		form url.Values
		who  string
	}{
		{"password", url.Values{"username": {"alice"}, "password": {authPassword}}, "alice"},
		{"database token", url.Values{"token": {dbTok}}, "ci"},
		{"config token", url.Values{"token": {authConfigToken}}, "cfg-ops"},
	}
	sessions := map[string]string{}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			id, csrf := a.mustSignin(w.form)
			sessions[w.name] = id
			if got := b.req("GET", "/test/whoami", "", "Cookie", id); got.status != 200 || !strings.Contains(got.body, `"name": "`+w.who+`"`) {
				t.Fatalf("B with A's session = %d %s", got.status, got.body)
			}
			form := []string{"Content-Type", "application/x-www-form-urlencoded", "Cookie", id}
			if got := b.req("POST", "/test/act", "csrf="+csrf, form...); got.status != 200 {
				t.Errorf("B: a POST with A's session and its CSRF token = %d %s", got.status, got.body)
			}
			if got := b.req("POST", "/test/act", "x=1", form...); got.status != 403 {
				t.Errorf("B: a POST with A's session and no CSRF token = %d, want 403", got.status)
			}
		})
	}
	ended := func(name, how string) {
		t.Helper()
		for _, n := range []*clusterNode{a, b} {
			if got := n.req("GET", "/test/whoami", "", "Cookie", sessions[name]); got.status != 401 {
				t.Errorf("%s session after %s: %d, want 401", name, how, got.status)
			}
		}
	}
	// Signed out on B: gone on A too.
	csrf := csrfToken(sessions["config token"])
	if got := b.req("POST", SignoutPath, "csrf="+csrf, "Content-Type", "application/x-www-form-urlencoded", "Cookie", sessions["config token"]); got.status != 303 {
		t.Fatalf("sign-out on B = %d", got.status)
	}
	ended("config token", "signing out on B")
	// `crier tokens revoke ci` and `crier users remove alice` against A's
	// store: refused on B, bearer and session alike.
	if err := a.st.RevokeToken(context.Background(), "ci"); err != nil {
		t.Fatal(err)
	}
	ended("database token", "revoking the token on A")
	if got := b.req("GET", "/test/whoami", "", "Authorization", "Bearer "+dbTok); got.status != 401 {
		t.Errorf("B with the token revoked on A = %d, want 401", got.status)
	}
	if err := a.st.RemoveUser(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	ended("password", "removing the user on A")
}

// TestCluster_Signin_LimitSpansNodes proves failed sign-ins count for the
// cluster: failures spread over both nodes, from one address or for one
// user from many, reach the limit as they would on one node, and guesses
// sent to both at once are counted before any is checked.
func TestCluster_Signin_LimitSpansNodes(t *testing.T) {
	t.Run("one address over real HTTP", func(t *testing.T) {
		a, b := newCluster(t)
		a.addUser("alice", "admin")
		for i, n := range []*clusterNode{a, b, a} { // every request comes from 127.0.0.1
			if got, _ := n.signin(url.Values{"username": {"alice"}, "password": {fmt.Sprintf("guess-%d", i)}}); got.status != 401 {
				t.Fatalf("guess %d: %d", i, got.status)
			}
		}
		for _, n := range []*clusterNode{b, a} {
			got, id := n.signin(url.Values{"username": {"alice"}, "password": {authPassword}})
			if got.status != 429 || id != "" || got.header.Get("Retry-After") == "" {
				t.Errorf("the right password after three failures on two nodes = %d (Retry-After %q), want 429 and no session",
					got.status, got.header.Get("Retry-After"))
			}
		}
	})
	t.Run("one user from many addresses", func(t *testing.T) {
		a, b := newCluster(t)
		a.addUser("alice", "admin")
		for i := range 5 {
			n := []*clusterNode{a, b}[i%2]
			if w := n.post(fmt.Sprintf("203.0.113.%d:5000", i), url.Values{"username": {"alice"}, "password": {"guess"}}); w.Code != 401 {
				t.Fatalf("guess %d: %d", i, w.Code)
			}
		}
		for _, n := range []*clusterNode{a, b} {
			if w := n.post("198.51.100.1:5000", url.Values{"username": {"alice"}, "password": {authPassword}}); w.Code != 429 {
				t.Errorf("alice after five failures on two nodes = %d, want 429", w.Code)
			}
		}
	})
	t.Run("parallel guesses at both nodes", func(t *testing.T) {
		a, b := newCluster(t)
		a.addUser("alice", "admin")
		const n = 12
		codes := make(chan int, n)
		var wg sync.WaitGroup
		for i := range n {
			node := []*clusterNode{a, b}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- node.post("192.0.2.99:5000", url.Values{"username": {"alice"}, "password": {fmt.Sprintf("parallel-%d", i)}}).Code
			}()
		}
		wg.Wait()
		close(codes)
		got := map[int]int{}
		for c := range codes {
			got[c]++
		}
		if got[401] != 3 || got[429] != n-3 {
			t.Errorf("%d guesses at two nodes at once: %v, want 3 checked (401) and %d refused (429)", n, got, n-3)
		}
	})
}

// TestCluster_IdempotencyKey_AnyNode proves a POST with an Idempotency-Key
// acts once in the cluster: while node A is still acting on it, node B
// answers 409; afterwards B replays A's answer, and refuses the key with
// another body.
func TestCluster_IdempotencyKey_AnyNode(t *testing.T) {
	a, b := newCluster(t)
	body := `{"title":"Helpline down","severity":"major"}`
	a.inc.hold, a.inc.entered = make(chan struct{}), make(chan struct{}, 1)
	first := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", a.srv.URL+"/api/v1/incidents", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+authConfigToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-cluster")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		first <- answer{status: resp.StatusCode, header: resp.Header, body: string(rb)}
	}()
	<-a.inc.entered
	post := func(n *clusterNode, body string) answer {
		return n.req("POST", "/api/v1/incidents", body, "Authorization", "Bearer "+authConfigToken, "Content-Type", "application/json",
			"Idempotency-Key", "k-cluster")
	}
	busy := post(b, body)
	if busy.status != 409 || !strings.Contains(busy.body, "idempotency_key_in_progress") || busy.header.Get("Retry-After") == "" {
		t.Errorf("B while A acts on the key = %d %s, want 409 idempotency_key_in_progress with Retry-After", busy.status, busy.body)
	}
	close(a.inc.hold)
	got := <-first
	if got.status != 201 {
		t.Fatalf("A = %d %s", got.status, got.body)
	}
	replay := post(b, body)
	if replay.status != 201 || replay.body != got.body || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("B after A answered = %d (replayed %q) %s, want A's answer", replay.status, replay.header.Get("Idempotent-Replayed"), replay.body)
	}
	if other := post(b, `{"title":"Other","severity":"major"}`); other.status != 422 || !strings.Contains(other.body, "idempotency_key_reused") {
		t.Errorf("B, same key, another body = %d %s, want 422", other.status, other.body)
	}
	if calls := a.inc.calls.Load() + b.inc.calls.Load(); calls != 1 {
		t.Errorf("the incident was opened %d times, want once", calls)
	}
	if list, _ := b.st.Incidents(context.Background(), false); len(list) != 1 {
		t.Errorf("%d incidents, want 1", len(list))
	}
}

// TestCluster_AckLink_AnyNode proves an acknowledgement link made on one
// node is confirmed on the other, found done on the first, and that a
// Slack button's click and its retry, sent to different nodes, record one
// acknowledgement.
func TestCluster_AckLink_AnyNode(t *testing.T) {
	a, b := newCluster(t)
	trigger := seedAckTrigger(t, a.st, time.Now())
	signer := dispatch.NewAckSigner(ackTestSecret, time.Hour, "") // node A's, as its dispatcher renders the email
	link := AckPath + signer.Token(dispatch.AckClaim{TriggerID: trigger, SubscriberID: "dr-a", Expires: time.Now().Add(time.Hour)})
	if got := a.req("GET", link, ""); got.status != 200 || !strings.Contains(got.body, "Confirm acknowledgement") {
		t.Fatalf("GET on A = %d\n%s", got.status, got.body)
	}
	if got := b.req("POST", link, ""); got.status != 200 || !strings.Contains(got.body, "Acknowledged") || strings.Contains(got.body, "Already") {
		t.Fatalf("POST on B = %d\n%s", got.status, got.body)
	}
	if got := a.req("POST", link, ""); got.status != 200 || !strings.Contains(got.body, "Already acknowledged") {
		t.Errorf("POST again on A = %d\n%s", got.status, got.body)
	}
	// dr-b's Slack button (a token for the delivery), clicked once, and
	// Slack's retry arriving at the other node.
	target, err := a.st.AckLinkTarget(context.Background(), trigger, "dr-b", 0)
	if err != nil {
		t.Fatal(err)
	}
	click := slackClick(t, SlackAckActionID, signer.Token(dispatch.AckClaim{DeliveryID: target.DeliveryID, Expires: time.Now().Add(time.Hour)}), "U0DUTY")
	sig, stamp := slackSign(slackTestSecret, click, time.Now())
	for _, n := range []*clusterNode{b, a} {
		got := n.req("POST", SlackInteractionsPath, click, "Content-Type", "application/x-www-form-urlencoded",
			"X-Slack-Signature", sig, "X-Slack-Request-Timestamp", stamp)
		if got.status != 200 {
			t.Fatalf("Slack click = %d %s", got.status, got.body)
		}
	}
	acks, err := a.st.Acks(context.Background(), trigger)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2 || acks["dr-a"].Via != "email" || acks["dr-b"].Via != "slack" {
		t.Errorf("acks %+v, want dr-a by email and dr-b by slack", acks)
	}
	outcomes := func(n *clusterNode) string {
		var out []string
		for _, o := range n.hooks.outcomes() {
			if slack, ok := strings.CutPrefix(o, SlackInteractionsPath+" "); ok {
				out = append(out, slack)
			}
		}
		return strings.Join(out, ",")
	}
	if outcomes(b) != "acknowledged" || outcomes(a) != "duplicate" {
		t.Errorf("Slack outcomes: B %q, A %q; want acknowledged on B, duplicate on A", outcomes(b), outcomes(a))
	}
	if len(b.acked) != 2 || len(a.acked) != 0 {
		t.Errorf("Acked heard on B %v, on A %v: want B's escalator woken twice, A's not", b.acked, a.acked)
	}
}

// TestCluster_Twilio_AnyNode proves Twilio's callbacks for a message node
// A sent are applied on node B, and that Twilio's retries arriving at the
// other node are recognised: a receipt, a reply acknowledging, a STOP.
func TestCluster_Twilio_AnyNode(t *testing.T) {
	a, b := newCluster(t)
	ctx := context.Background()
	id := a.hooks.sentSMS("incident:INC-1:1", "dr-morgan", morganPhone, "INC-1", "SM0001", true) // sent by A's dispatcher
	q := fmt.Sprintf("d=%d", id)
	for _, n := range []*clusterNode{b, a} { // the receipt, and Twilio's retry of it
		if r := n.hooks.signedPost(TwilioStatusPath, q, statusForm("SM0001", "delivered", "")); r.code != http.StatusNoContent {
			t.Fatalf("status callback: %d %s", r.code, r.body)
		}
	}
	if e := a.hooks.logEntry(id); e.Status != store.StatusDelivered {
		t.Errorf("A's log after B took the receipt: %q, want delivered", e.Status)
	}
	last := func(n *clusterNode) string { o := n.hooks.outcomes(); return o[len(o)-1] }
	if last(b) != TwilioStatusPath+" applied" || last(a) != TwilioStatusPath+" duplicate" {
		t.Errorf("receipt outcomes: B %q, A %q; want applied, then duplicate", last(b), last(a))
	}
	ack := inboundForm(morganPhone, "ACK", "SMin0001")
	if got := twimlMessage(t, b.hooks.signedPost(TwilioInboundPath, "", ack)); !strings.HasPrefix(got, "Acknowledged INC-1") {
		t.Errorf("ACK to B: reply %q", got)
	}
	if got := twimlMessage(t, a.hooks.signedPost(TwilioInboundPath, "", ack)); !strings.HasPrefix(got, "Already acknowledged INC-1") {
		t.Errorf("Twilio's retry of the ACK to A: reply %q", got)
	}
	if acks, _ := a.st.Acks(ctx, a.hooks.logEntry(id).TriggerID); len(acks) != 1 || acks["dr-morgan"].Via != "sms" {
		t.Errorf("acks on A after B took the reply: %+v", acks)
	}
	if r := b.hooks.signedPost(TwilioInboundPath, "", inboundForm(morganPhone, "STOP", "SMin0002")); r.code != 200 {
		t.Fatalf("STOP: %d", r.code)
	}
	if out, err := a.st.OptedOut(ctx, "sms", morganPhone); err != nil || !out {
		t.Errorf("opted out on A after a STOP to B: %v, %v", out, err)
	}
	in, err := a.st.InboundMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 {
		t.Errorf("%d inbound rows, want 2 (the retried ACK recorded once): %+v", len(in), in)
	}
}
