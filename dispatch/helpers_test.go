package dispatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// t0 is the tests' starting time: a winter afternoon, so Europe/London is UTC.
var t0 = time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)

// fakeClock is the one clock a test hands to the store, the planner and the
// dispatcher; it only moves when the test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// openStore opens a fresh database file in a temporary directory with the
// production DSN and closes it when the test ends.
func openStore(tb testing.TB, clk *fakeClock) (*store.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "crier.db")
	return openAt(tb, path, clk), path
}

// openAt opens the database at path (a restart reopens the same file).
func openAt(tb testing.TB, path string, clk *fakeClock) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), path, store.WithClock(clk.Now))
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// person builds a normalised subscriber with a phone, an email and a Slack
// channel; mods change it.
func person(id string, mods ...func(*subscribers.Subscriber)) subscribers.Subscriber {
	s := subscribers.Subscriber{ID: id, Name: "Person " + id, Roles: []string{"clinician"}, Nations: []string{"wales"},
		Locale: "en", TimeZone: "Europe/London", Phone: "+447400123456", Email: id + "@example.org", Slack: "C0123ABCDE"}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func addSubscribers(tb testing.TB, st *store.Store, list ...subscribers.Subscriber) {
	tb.Helper()
	err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.UpsertSubscribers(list, "config") })
	if err != nil {
		tb.Fatalf("UpsertSubscribers: %v", err)
	}
}

// loadTemplates loads the default templates plus overrides written from
// files (path under the override directory → content).
func loadTemplates(tb testing.TB, files map[string]string) *templates.Set {
	tb.Helper()
	dir := ""
	if len(files) > 0 {
		dir = tb.TempDir()
		for name, src := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	set, err := templates.Load(dir)
	if err != nil {
		tb.Fatalf("templates.Load: %v", err)
	}
	return set
}

// testChannels are the channel instances every test planner knows.
var testChannels = map[string]channels.Kind{"sms": channels.KindSMS, "email": channels.KindEmail, "slack": channels.KindSlack}

// testAudiences: everyone, the clinicians, and the people covering Wales.
var testAudiences = []Audience{
	{Name: "everyone"},
	{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}},
	{Name: "wales", Selector: subscribers.Selector{Nations: []string{"wales"}}},
}

func newPlanner(clk *fakeClock, tmpl *templates.Set, retry RetryPolicy) *Planner {
	return NewPlanner(PlannerOptions{Templates: tmpl, Channels: testChannels, Audiences: testAudiences, Retry: retry, Now: clk.Now})
}

// message is an ad-hoc broadcast to one audience over some channels.
func message(key, audience string, chans ...string) Request {
	return Request{Key: key, Kind: "send", Name: "test", Subject: "Paper prescriptions", Body: "Use paper prescriptions until further notice.",
		Targets: []Target{{Audience: audience, Channels: chans, Event: templates.EventMessage}}}
}

// incident is an open critical incident affecting Wales, stored so the
// dispatcher can build thread summaries from it.
func incident(tb testing.TB, st *store.Store, now time.Time) *incidents.Incident {
	tb.Helper()
	inc, err := incidents.Open(incidents.Change{Title: "Helpline referrals down", Severity: "critical",
		Impacts: []incidents.Impact{{Service: "referrals", Nation: "wales", Status: incidents.Outage, Workaround: "phone the duty clinician"}}}, now)
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		tb.Fatal(err)
	}
	return inc
}

// incidentsImpact is a referrals outage in nation.
func incidentsImpact(nation string) incidents.Impact {
	return incidents.Impact{Service: "referrals", Nation: nation, Status: incidents.Outage, Workaround: "phone the duty clinician"}
}

func plan(tb testing.TB, p *Planner, st *store.Store, req Request) Outcome {
	tb.Helper()
	out, err := p.Plan(context.Background(), st, req)
	if err != nil {
		tb.Fatalf("Plan(%s): %v", req.Key, err)
	}
	return out
}

// logRows reads every delivery (with bodies), keyed "subscriber/channel",
// optionally only those of one trigger key.
func logRows(tb testing.TB, st *store.Store, trigger string) map[string]store.LogEntry {
	tb.Helper()
	out := map[string]store.LogEntry{}
	err := st.Log(context.Background(), store.LogFilter{Trigger: trigger, WithBody: true}, func(e *store.LogEntry) error {
		out[e.Subscriber+"/"+e.Channel] = *e
		return nil
	})
	if err != nil {
		tb.Fatalf("Log: %v", err)
	}
	return out
}

func counts(tb testing.TB, st *store.Store) map[string]int {
	tb.Helper()
	c, err := st.Counts(context.Background(), nil)
	if err != nil {
		tb.Fatalf("Counts: %v", err)
	}
	return c
}

// script decides one send's result; n is how many times this delivery key
// has been sent so far, this time included.
type script func(n int, m channels.Message) (channels.Receipt, error)

// testChannel is the dispatcher's peer: it records every message it is
// handed and answers from its script (accepts everything by default).
type testChannel struct {
	name   string
	kind   channels.Kind
	script script

	mu    sync.Mutex
	sends map[string]int
	msgs  []channels.Message
}

var _ channels.Channel = (*testChannel)(nil)

func newTestChannel(name string, kind channels.Kind, s script) *testChannel {
	return &testChannel{name: name, kind: kind, script: s, sends: map[string]int{}}
}

func (c *testChannel) Name() string        { return c.name }
func (c *testChannel) Kind() channels.Kind { return c.kind }

func (c *testChannel) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	c.mu.Lock()
	c.sends[m.Key]++
	n := c.sends[m.Key]
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	if c.script != nil {
		return c.script(n, m)
	}
	return channels.Receipt{ProviderID: fmt.Sprintf("%s-%d-%d", c.name, m.DeliveryID, n), Status: "accepted"}, nil
}

// sent returns how many times each key was sent.
func (c *testChannel) sent() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.sends))
	for k, v := range c.sends {
		out[k] = v
	}
	return out
}

func (c *testChannel) messages() []channels.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]channels.Message(nil), c.msgs...)
}

// fixedRand is a jitter source that always returns its value, clamped to
// the range asked for (-1 means the top of the range).
func fixedRand(v int64) func(int64) int64 {
	return func(n int64) int64 {
		if v < 0 || v >= n {
			return n - 1
		}
		return v
	}
}

func newDispatcher(st *store.Store, clk *fakeClock, retry RetryPolicy, chans ...channels.Channel) *Dispatcher {
	d := New(st, Options{Retry: retry, Now: clk.Now, Rand: fixedRand(0), Poll: 5 * time.Millisecond})
	for _, ch := range chans {
		d.AddChannel(ch, Limits{Concurrency: 2})
	}
	return d
}

// drain runs the dispatcher until nothing of the triggers is due at the
// fake clock's current time (later retries are left queued).
func drain(tb testing.TB, d *Dispatcher, clk *fakeClock, triggerIDs ...int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Drain(ctx, triggerIDs, clk.Now(), nil); err != nil {
		tb.Fatalf("Drain: %v", err)
	}
}

var errScripted = errors.New("scripted failure")
