package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/store/storetest"
)

// nodes is several `crier serve` processes on one PostgreSQL database.
type nodes struct {
	t      *testing.T
	dir    string
	config string
	env    []string
	db     *sql.DB
	nodes  []*process
}

// newCluster writes yaml (whose database.url is ${CRIER_TEST_DB}) beside
// people.csv of n clinicians, every fifth also an official, on a fresh
// PostgreSQL schema.
func newCluster(t *testing.T, yaml string, n int, env ...string) *nodes {
	t.Helper()
	url := storetest.Postgres(t)
	c := &nodes{t: t, dir: t.TempDir()}
	var b strings.Builder
	b.WriteString("id,name,roles,nations,phone,email\n")
	for i := range n {
		roles := "clinician"
		if i%5 == 0 {
			roles = "clinician;official"
		}
		fmt.Fprintf(&b, "c%05d,Dr C %d,%s,wales,+447400%06d,c%05d@example.org\n", i, i, roles, i, i)
	}
	h := &harness{t: t, dir: c.dir}
	h.write("people.csv", b.String())
	h.write("config.yaml", yaml)
	c.config = filepath.Join(c.dir, "config.yaml")
	c.env = append([]string{"CRIER_TEST_DB=" + url, "CRIER_TEST_TOKEN=" + serveToken, "GOGC=100"}, env...)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c.db = db
	return c
}

func (c *nodes) start() *process {
	c.t.Helper()
	p := startProcess(c.t, c.config, c.env...)
	c.nodes = append(c.nodes, p)
	return p
}

// term stops a process as SIGTERM does and waits for it.
func (p *process) term() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatal("the process did not stop within 30s of SIGTERM")
	}
}

// get is a GET without a token.
func (p *process) get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *nodes) count(q string, args ...any) int {
	c.t.Helper()
	var n int
	if err := c.db.QueryRow(q, args...).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *nodes) statuses(channel string) map[string]int {
	c.t.Helper()
	rows, err := c.db.Query(`SELECT status, COUNT(*) FROM deliveries WHERE channel=$1 GROUP BY status`, channel)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			c.t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// TestCluster_ThreeNodes_SIGKILLAndRestart: three `crier serve` processes
// on one PostgreSQL database send a 10,000-recipient SMS broadcast to the
// Twilio peer and a briefing to the SMTP peer together, every node
// claiming and sending. One node is SIGKILLed mid-dispatch and another is
// restarted. Every clinician gets exactly one SMS (the few the killed node
// had handed to Twilio are held as unknown and settled by reconciliation
// with Twilio's message list), every official gets the briefing at least
// once with one Message-ID however many copies, and no delivery is left
// unfinished.
func TestCluster_ThreeNodes_SIGKILLAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("three crier processes for about a minute; not run with -short")
	}
	const n, concurrency = 10000, 4
	sms := channeltest.NewTwilioPeer(t, channeltest.WithTwilioLatency(15*time.Millisecond))
	mail := channeltest.NewSMTPPeer(t)
	yaml := fmt.Sprintf(`database:
  url: ${CRIER_TEST_DB}
server:
  tokens:
    - name: ops
      role: operator
      token: ${CRIER_TEST_TOKEN}
retry:
  reconcile_after: 6s
channels:
  sms:
    driver: twilio
    concurrency: %d
    twilio:
      account_sid: %s
      auth_token: ${CRIER_TEST_TWILIO_TOKEN}
      messaging_service_sid: %s
      api_base_url: %s
      timeout: 5s
  mail:
    driver: smtp
    concurrency: 2
    smtp:
      host: %s
      port: %d
      tls: none
      from: briefings@example.org
      pool_size: 2
subscribers:
  csv: people.csv
audiences:
  clinicians:
    roles: [clinician]
  officials:
    roles: [official]
briefings:
  sitrep:
    title: Situation report
    audience: officials
    channels: [mail]
`, concurrency, sms.AccountSID, sms.MessagingServiceSID, sms.URL, mail.Host, mail.Port)
	c := newCluster(t, yaml, n, "CRIER_TEST_TWILIO_TOKEN="+sms.AuthToken)
	a, b, k := c.start(), c.start(), c.start()
	if code, body := a.post("/api/v1/broadcasts", serveToken, `{"audience":"clinicians","channels":["sms"],"body":"Referrals are down in Wales: phone the duty clinician.","key":"cluster-drill"}`); code != 201 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	if code, body := b.post("/api/v1/schedules/sitrep/fire", serveToken, ``); code != 200 && code != 201 && code != 202 {
		t.Fatalf("fire the briefing: %d %s", code, body)
	}

	// Every node sends: wait until each has claimed something.
	waitFor(t, 60*time.Second, "all three nodes holding deliveries at once", func() bool {
		return c.count(`SELECT COUNT(DISTINCT claimed_by) FROM deliveries WHERE claimed_by != ''`) >= 3
	})
	waitFor(t, 120*time.Second, "a third of the SMS sent", func() bool { return len(sms.Sends()) >= n/3 })
	k.kill()
	sendingAtKill := c.count(`SELECT COUNT(*) FROM deliveries WHERE status='sending' AND channel='sms'`)
	t.Logf("at the kill: %d SMS sending across the cluster (in flight on the three nodes)", sendingAtKill)
	if sendingAtKill > 3*concurrency {
		t.Errorf("%d SMS sending at once, want at most the three nodes' concurrency (%d)", sendingAtKill, 3*concurrency)
	}

	waitFor(t, 120*time.Second, "two thirds of the SMS sent", func() bool { return len(sms.Sends()) >= 2*n/3 })
	b.term()
	c.start()

	waitFor(t, 180*time.Second, "every delivery final", func() bool {
		st := c.statuses("sms")
		return st["sent"] == n && c.count(`SELECT COUNT(*) FROM deliveries WHERE status IN ('queued','sending')`) == 0
	})
	perNumber := map[string]int{}
	for _, m := range sms.Messages() {
		perNumber[m.To]++
	}
	if len(perNumber) != n {
		t.Errorf("%d clinicians got an SMS, want %d", len(perNumber), n)
	}
	for to, k := range perNumber {
		if k != 1 {
			t.Errorf("%s got %d SMS, want exactly 1", to, k)
		}
	}
	reconciled := c.count(`SELECT COUNT(*) FROM deliveries WHERE channel='sms' AND reason='reconciled'`)
	t.Logf("%d SMS settled by reconciliation after the kill", reconciled)
	if reconciled > concurrency {
		t.Errorf("%d SMS were in doubt after the kill, want at most the killed node's concurrency (%d)", reconciled, concurrency)
	}

	officials := n / 5
	ids := map[string]map[string]bool{} // recipient → Message-IDs
	for _, m := range mail.Messages() {
		for _, to := range m.To {
			if ids[to] == nil {
				ids[to] = map[string]bool{}
			}
			ids[to][m.Header.Get("Message-Id")] = true
		}
	}
	if len(ids) != officials {
		t.Errorf("%d officials got the briefing, want %d", len(ids), officials)
	}
	for to, set := range ids {
		if len(set) != 1 {
			t.Errorf("%s got copies with %d Message-IDs, want one", to, len(set))
		}
	}
	if st := c.statuses("mail"); st["sent"] != officials {
		t.Errorf("briefing deliveries %v, want all %d sent", st, officials)
	}
	if n := c.count(`SELECT COUNT(DISTINCT claimed_by) FROM deliveries WHERE claimed_by != ''`); n != 0 {
		t.Errorf("%d processes still hold deliveries", n)
	}
}

// TestCluster_SchedulerFailover: three nodes run one scheduler between
// them. Each minute's briefing fires exactly once; when the node running
// the scheduler is killed, another takes over and the next occurrence
// fires within 30 seconds of its time; the missed-briefing alarm of a
// briefing whose every message fails is raised once per occurrence,
// whichever node raises it.
func TestCluster_SchedulerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for minute boundaries (about two and a half minutes); not run with -short")
	}
	yaml := `database:
  url: ${CRIER_TEST_DB}
channels:
  mail:
    driver: sandbox
    sandbox:
      kind: email
  broken:
    driver: sandbox
    sandbox:
      kind: email
      fail_addresses: [c00000@example.org]
  pager:
    driver: sandbox
    sandbox:
      kind: sms
subscribers:
  csv: people.csv
audiences:
  officials:
    roles: [official]
  first:
    ids: [c00000]
briefings:
  sitrep:
    title: Situation report
    schedule: "* * * * *"
    audience: officials
    channels: [mail]
  lost:
    title: A report that never arrives
    schedule: "* * * * *"
    audience: first
    channels: [broken]
    alarm:
      after: 1m
      audience: officials
      channels: [pager]
`
	c := newCluster(t, yaml, 10)
	for range 3 {
		c.start()
	}
	leader := func() *process {
		for _, p := range c.nodes {
			if p.cmd.ProcessState != nil {
				continue
			}
			if code, body := p.get("/readyz"); code == 200 && strings.Contains(body, "scheduler: this process") {
				return p
			}
		}
		return nil
	}
	var first *process
	waitFor(t, 30*time.Second, "one node running the scheduler", func() bool { first = leader(); return first != nil })
	leaders := 0
	for _, p := range c.nodes {
		if code, body := p.get("/readyz"); code == 200 && strings.Contains(body, "scheduler: this process") {
			leaders++
		} else if code != 200 || !strings.Contains(body, "stands by") {
			t.Errorf("a standby node's /readyz: %d %q", code, body)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d nodes run the scheduler, want 1", leaders)
	}
	runs := func() []int64 {
		rows, err := c.db.Query(`SELECT due_at FROM schedule_runs WHERE schedule='sitrep' ORDER BY due_at`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var d int64
			rows.Scan(&d)
			out = append(out, d)
		}
		return out
	}
	waitFor(t, 75*time.Second, "the first occurrence fired", func() bool { return len(runs()) >= 1 })
	firstDue := runs()[0]
	// Kill the scheduler's node well before the next minute.
	first.kill()
	nextDue := firstDue + 60_000
	waitFor(t, 100*time.Second, "the next occurrence fired and planned on another node", func() bool {
		return slices.Contains(runs(), nextDue) &&
			c.count(`SELECT COUNT(*) FROM schedule_runs WHERE schedule='sitrep' AND trigger_id IS NOT NULL AND trigger_id != 0`) == len(runs())
	})
	var fired int64
	if err := c.db.QueryRow(`SELECT fired_at FROM schedule_runs WHERE schedule='sitrep' AND due_at=$1`, nextDue).Scan(&fired); err != nil {
		t.Fatal(err)
	}
	if lag := time.Duration(fired-nextDue) * time.Millisecond; lag > 30*time.Second {
		t.Errorf("the occurrence after the failover fired %v after its time, want within 30s", lag)
	} else {
		t.Logf("the occurrence after the failover fired %v after its time", lag)
	}
	if l := leader(); l == nil || l == first {
		t.Errorf("after the kill no other node runs the scheduler")
	}
	got := runs()
	for i := 1; i < len(got); i++ {
		if got[i]-got[i-1] != 60_000 {
			t.Errorf("occurrences %v: one was missed or fired twice", got)
		}
	}
	if n := c.count(`SELECT COUNT(*) FROM triggers WHERE kind='briefing' AND name='sitrep'`); n != len(got) {
		t.Errorf("%d sitrep triggers for %d occurrences, want one each", n, len(got))
	}
	// The alarm of the first lost occurrence: raised once, by whichever
	// node ran the scheduler by then.
	waitFor(t, 100*time.Second, "the missed-briefing alarm", func() bool {
		return c.count(`SELECT COUNT(*) FROM triggers WHERE key LIKE 'alarm:lost:%'`) >= 1
	})
	rows, err := c.db.Query(`SELECT key FROM triggers WHERE key LIKE 'alarm:lost:%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	alarms := map[string]int{}
	for rows.Next() {
		var k string
		rows.Scan(&k)
		alarms[k]++
	}
	for k, n := range alarms {
		if n != 1 {
			t.Errorf("alarm %s raised %d times", k, n)
		}
	}
	if n := c.count(`SELECT COUNT(*) FROM deliveries d JOIN triggers t ON t.id=d.trigger_id WHERE t.key LIKE 'alarm:lost:%' AND d.channel='pager'`); n == 0 {
		t.Error("the alarm planned no message to the pager")
	}
}

// TestCluster_RateAcrossNodes: a channel with rate: 20 on three nodes is
// sent by one node at a time, so Twilio sees at most 20 messages in any
// second, and the channel keeps to at least 95% of that on average.
func TestCluster_RateAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three crier processes for about 20s; not run with -short")
	}
	const n, rate = 300, 20
	sms := channeltest.NewTwilioPeer(t, channeltest.WithTwilioLatency(5*time.Millisecond))
	yaml := fmt.Sprintf(`database:
  url: ${CRIER_TEST_DB}
server:
  tokens:
    - name: ops
      role: operator
      token: ${CRIER_TEST_TOKEN}
channels:
  sms:
    driver: twilio
    concurrency: 4
    rate: %d
    twilio:
      account_sid: %s
      auth_token: ${CRIER_TEST_TWILIO_TOKEN}
      messaging_service_sid: %s
      api_base_url: %s
subscribers:
  csv: people.csv
audiences:
  clinicians:
    roles: [clinician]
`, rate, sms.AccountSID, sms.MessagingServiceSID, sms.URL)
	c := newCluster(t, yaml, n, "CRIER_TEST_TWILIO_TOKEN="+sms.AuthToken)
	a := c.start()
	c.start()
	c.start()
	if code, body := a.post("/api/v1/broadcasts", serveToken, `{"audience":"clinicians","channels":["sms"],"body":"Referrals are down.","key":"rate-drill"}`); code != 201 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	waitFor(t, 120*time.Second, "every SMS sent", func() bool { return len(sms.Sends()) >= n })
	var at []time.Time
	for _, r := range sms.Sends() {
		at = append(at, r.Time)
	}
	slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
	most := 0
	for i := range at {
		k := 0
		for _, b := range at[i:] {
			if b.Sub(at[i]) < time.Second {
				k++
			}
		}
		most = max(most, k)
	}
	if most > rate {
		t.Errorf("Twilio saw %d messages in one second, want at most %d", most, rate)
	}
	// On average, over the whole send: n messages, the first rate of them
	// at once, the rest a second's worth at a time.
	span := at[len(at)-1].Sub(at[0]).Seconds()
	avg := float64(n-rate) / span
	t.Logf("at most %d in any second; %.1f a second on average", most, avg)
	if avg < 0.95*rate {
		t.Errorf("%.1f messages a second on average, want at least 95%% of %d", avg, rate)
	}
}
