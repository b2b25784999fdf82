package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
)

// crashConfig is a crier with one rate-limited Twilio channel pointed at
// peer, an operator token and people.csv as its subscribers.
func crashConfig(peer *channeltest.TwilioPeer, rate, concurrency int, reconcileAfter time.Duration) string {
	return fmt.Sprintf(`store:
  path: crier.db
server:
  tokens:
    - name: ops
      role: operator
      token: ${CRIER_TEST_TOKEN}
retry:
  reconcile_after: %s
channels:
  sms:
    driver: twilio
    concurrency: %d
    rate: %d
    twilio:
      account_sid: %s
      auth_token: ${CRIER_TEST_TWILIO_TOKEN}
      messaging_service_sid: %s
      api_base_url: %s
      timeout: 5s
subscribers:
  csv: people.csv
audiences:
  clinicians:
    roles: [clinician]
`, reconcileAfter, concurrency, rate, peer.AccountSID, peer.MessagingServiceSID, peer.URL)
}

func writePeople(t *testing.T, dir string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,name,roles,nations,phone\n")
	for i := range n {
		fmt.Fprintf(&b, "c%05d,Dr C %d,clinician,wales,+447400%06d\n", i, i, i)
	}
	h := &harness{t: t, dir: dir}
	h.write("people.csv", b.String())
}

type rowState struct {
	status, claimedBy, address, providerID string
	attemptAt                              int64
}

func deliveryStates(t *testing.T, db *sql.DB) []rowState {
	t.Helper()
	rows, err := db.Query(`SELECT status, claimed_by, address, provider_id, attempt_at FROM deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []rowState
	for rows.Next() {
		var r rowState
		if err := rows.Scan(&r.status, &r.claimedBy, &r.address, &r.providerID, &r.attemptAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServe_SIGKILLMidBroadcast kills a real `crier serve` process three
// times in the middle of a rate-limited SMS broadcast to the Twilio peer
// and restarts it each time. At each kill at most the channel's
// concurrency of deliveries are in doubt (sending), each matching a
// request the peer saw; the rest of what the dead process had claimed is
// queued again untouched. Within 30 seconds of each restart nothing is
// left sending or held by the dead process and sending has resumed. In
// the end reconciliation with Twilio's message list settles every
// delivery in doubt: every clinician got exactly one SMS and every
// delivery is sent, with the SID of that SMS.
func TestServe_SIGKILLMidBroadcast(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills crier processes for about 30s; not run with -short")
	}
	const n, rate, concurrency = 1200, 150, 4
	peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioLatency(25*time.Millisecond))
	dir := t.TempDir()
	writePeople(t, dir, n)
	config := filepath.Join(dir, "config.yaml")
	(&harness{t: t, dir: dir}).write("config.yaml", crashConfig(peer, rate, concurrency, 6*time.Second))
	env := []string{"CRIER_TEST_TOKEN=" + serveToken, "CRIER_TEST_TWILIO_TOKEN=" + peer.AuthToken, "GOGC=100"}
	db := readDB(t, filepath.Join(dir, "crier.db"))

	p := startProcess(t, config, env...)
	code, body := p.post("/api/v1/broadcasts", serveToken, `{"audience":"clinicians","channels":["sms"],"body":"Referrals are down in Wales: phone the duty clinician.","key":"crash-drill"}`)
	if code != 201 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	onWay := map[string]bool{} // requests that never left, killed on their way
	started := time.Now()      // when the process now running started
	for _, killAt := range []int{150, 500, 850} {
		waitFor(t, 60*time.Second, fmt.Sprintf("the peer to see %d messages", killAt), func() bool { return len(peer.Sends()) >= killAt })
		killed := time.Now()
		p.kill()
		seen := map[string]bool{}
		for _, r := range peer.Sends() {
			seen[r.To] = true
		}
		dead := map[string]bool{}
		sending, claimed := 0, 0
		for _, r := range deliveryStates(t, db) {
			if r.claimedBy != "" {
				dead[r.claimedBy] = true
			}
			switch {
			case r.status == "sending":
				sending++
				// The mark is committed just before the request is written:
				// a kill in between leaves a row whose request never left.
				// That moment is short; reconciliation queues such a row
				// again once Twilio has shown it has no such message.
				if !seen[r.address] {
					if since := killed.Sub(time.UnixMilli(r.attemptAt)); since > onTheWay {
						t.Errorf("kill at %d: a delivery to %s has been sending for %v but the peer never saw a request for it", killAt, r.address, since)
					} else {
						onWay[r.address] = true
						t.Logf("kill at %d: the request to %s was on its way (marked %v before the kill)", killAt, r.address, since)
					}
				}
			case r.status == "queued" && r.claimedBy != "":
				claimed++
			}
		}
		if sending > concurrency {
			t.Errorf("kill at %d: %d deliveries sending, want at most the channel's concurrency (%d)", killAt, sending, concurrency)
		}
		t.Logf("kill at %d: %d in doubt, %d claimed but never attempted", killAt, sending, claimed)

		before := len(peer.Sends())
		previous := started
		restart := time.Now()
		started = restart
		p = startProcess(t, config, env...)
		waitFor(t, 30*time.Second, "every row moving again after the restart", func() bool {
			for _, r := range deliveryStates(t, db) {
				if dead[r.claimedBy] || r.status == "sending" && r.attemptAt < restart.UnixMilli() {
					return false
				}
			}
			return len(peer.Sends()) > before
		})
		t.Logf("kill at %d: moving again %v after the restart", killAt, time.Since(restart).Round(time.Millisecond))
		// What this kill left in doubt: requests started by the process
		// just killed (an earlier kill's may still wait to be settled).
		unknown := 0
		for _, r := range deliveryStates(t, db) {
			if r.status == "unknown" && !time.UnixMilli(r.attemptAt).Before(previous) {
				unknown++
				if !seen[r.address] && !onWay[r.address] {
					t.Errorf("kill at %d: %s is unknown but the peer never saw a request for it", killAt, r.address)
				}
			}
		}
		if unknown > concurrency {
			t.Errorf("kill at %d: %d unknown after the restart, want at most %d", killAt, unknown, concurrency)
		}
	}

	waitFor(t, 90*time.Second, "every delivery sent", func() bool {
		for _, r := range deliveryStates(t, db) {
			if r.status != "sent" {
				return false
			}
		}
		return true
	})
	perNumber := map[string][]string{}
	for _, m := range peer.Messages() {
		perNumber[m.To] = append(perNumber[m.To], m.SID)
	}
	if len(perNumber) != n {
		t.Errorf("%d clinicians got an SMS, want %d", len(perNumber), n)
	}
	for to, sids := range perNumber {
		if len(sids) != 1 {
			t.Errorf("%s got %d SMS, want exactly 1", to, len(sids))
		}
	}
	for _, r := range deliveryStates(t, db) {
		if sids := perNumber[r.address]; len(sids) != 1 || r.providerID != sids[0] {
			t.Errorf("%s is recorded with provider id %q, the peer created %v", r.address, r.providerID, sids)
		}
	}
	var reconciled int
	if err := db.QueryRow(`SELECT COUNT(*) FROM delivery_events WHERE reason='reconciled'`).Scan(&reconciled); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d deliveries settled by reconciliation", reconciled)
	if t.Failed() {
		t.Logf("last process's log:\n%s", p.log())
	}
}

// onTheWay is how long before a kill a delivery may have been marked
// sending with its request not yet at the peer: the commit, the rate's
// last check and the write of the request.
const onTheWay = 200 * time.Millisecond

// waitFor polls cond every 50ms until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
