package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for raw

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/engine"
	"github.com/crier-dev/crier/store/storetest"
	"github.com/crier-dev/crier/subscribers"
)

// t0 is the tests' starting time.
var t0 = time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)

// fakeClock only moves when the test moves it.
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

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// open opens a fresh database on the engine under test (a SQLite file
// with the production DSN, or a PostgreSQL schema of its own; see
// storetest) and closes it when the test ends. path is its database.url.
func open(tb testing.TB, clk *fakeClock) (*store.Store, string) {
	tb.Helper()
	path := storetest.URL(tb)
	return openAt(tb, path, clk), path
}

func openAt(tb testing.TB, path string, clk *fakeClock) *store.Store {
	tb.Helper()
	st, err := store.OpenURL(context.Background(), path, store.WithClock(clk.Now))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// raw opens the same database with database/sql, to count rows the
// store's API does not expose.
func raw(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	var db *sql.DB
	var err error
	if p, ok := strings.CutPrefix(path, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+p+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	} else {
		db, err = sql.Open("pgx", path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// rawRow runs one query on raw(tb, path), with ? placeholders on either engine.
func rawRow(tb testing.TB, path, q string, args ...any) *sql.Row {
	tb.Helper()
	if !strings.HasPrefix(path, "sqlite:") {
		q = engine.Numbered(q)
	}
	return raw(tb, path).QueryRow(q, args...)
}

// rawExec runs one statement on the database behind the store's back,
// with ? placeholders on either engine.
func rawExec(tb testing.TB, path, q string, args ...any) {
	tb.Helper()
	var db *sql.DB
	var err error
	if p, ok := strings.CutPrefix(path, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(5000)")
	} else {
		db, err = sql.Open("pgx", path)
		q = engine.Numbered(q)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// sqliteOnly skips a test of what only the SQLite engine has.
func sqliteOnly(tb testing.TB) {
	tb.Helper()
	if storetest.Engine() != "sqlite" {
		tb.Skip("a test of the SQLite file itself")
	}
}

func count(tb testing.TB, path, table string) int {
	tb.Helper()
	var n int
	if err := raw(tb, path).QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}

// delivery is a queued SMS delivery to subscriber id; mods change it.
func delivery(id string, mods ...func(*store.NewDelivery)) store.NewDelivery {
	d := store.NewDelivery{SubscriberID: id, Channel: "sms", Kind: "sms", Address: "+4474000000" + id, Status: store.StatusQueued,
		Text: "Referrals are down in Wales.", Segments: 1}
	for _, m := range mods {
		m(&d)
	}
	return d
}

// enqueue writes a trigger with the given deliveries in one transaction
// and returns the trigger's id.
func enqueue(tb testing.TB, st *store.Store, key string, ds ...store.NewDelivery) int64 {
	tb.Helper()
	var id int64
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: key, Kind: "send", Name: "test"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		id = tr.ID
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for i := range ds {
			if err := enq.Add(&ds[i]); err != nil {
				return err
			}
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		return tx.SetPlanned(tr.ID, enq.Written())
	})
	if err != nil {
		tb.Fatalf("enqueue %s: %v", key, err)
	}
	return id
}

// rows reads the log keyed by "trigger/subscriber/channel".
func rows(tb testing.TB, st *store.Store) map[string]store.LogEntry {
	tb.Helper()
	out := map[string]store.LogEntry{}
	err := st.Log(context.Background(), store.LogFilter{WithBody: true}, func(e *store.LogEntry) error {
		out[store.DeliveryKey(e.Trigger, e.Subscriber, e.Channel)] = *e
		return nil
	})
	if err != nil {
		tb.Fatalf("Log: %v", err)
	}
	return out
}

func claim(tb testing.TB, st *store.Store, o store.ClaimOptions) []store.Claimed {
	tb.Helper()
	if o.Channel == "" {
		o.Channel = "sms"
	}
	if o.Limit == 0 {
		o.Limit = 100
	}
	if o.Lease == 0 {
		o.Lease = 5 * time.Minute
	}
	// As the dispatcher does: what is claimed is sent at once.
	o.Send = true
	c, err := st.Claim(context.Background(), o)
	if err != nil {
		tb.Fatalf("Claim: %v", err)
	}
	return c
}

func claimedKeys(cs []store.Claimed) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Key
	}
	return out
}

func record(tb testing.TB, st *store.Store, rs ...store.Result) {
	tb.Helper()
	if err := st.Record(context.Background(), rs); err != nil {
		tb.Fatalf("Record: %v", err)
	}
}

func sub(id string) subscribers.Subscriber {
	return subscribers.Subscriber{ID: id, Name: "Person " + id, Roles: []string{"clinician"}, Nations: []string{"wales", "england"},
		Locale: "cy", TimeZone: "Europe/London", Phone: fmt.Sprintf("+4474001234%02d", len(id)), Email: id + "@example.org",
		QuietHours: &subscribers.QuietHours{Start: "22:00", End: "07:00"}, OptedOut: []string{"slack"}}
}
