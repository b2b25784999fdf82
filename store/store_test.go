package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

func TestStore_Open_Errors(t *testing.T) {
	sqliteOnly(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // prepares the file at path
		empty bool                            // open "" instead of path
		want  string
	}{
		{"empty path", nil, true, "store.path"},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("this is not SQLite\n", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, "is it a SQLite database?"},
		{"schema newer than this binary", func(t *testing.T, path string) {
			st, err := store.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
				t.Fatal(err)
			}
		}, false, "schema version 99, newer than this crier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crier.db")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			if tt.empty {
				path = ""
			}
			st, err := store.Open(context.Background(), path)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStore_Open_ReopenKeepsData(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openAt(t, path, clk)
	if got := rows(t, st); len(got) != 1 {
		t.Errorf("after reopening: %d rows, want 1", len(got))
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestStore_Write_RollsBack(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	boom := errors.New("render failed")
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: "send:rollback", Kind: "send"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for _, id := range []string{"a", "b"} {
			d := delivery(id)
			if err := enq.Add(&d); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the callback's error", err)
	}
	for _, table := range []string{"triggers", "deliveries", "messages"} {
		if n := count(t, path, table); n != 0 {
			t.Errorf("%s: %d rows after a rolled-back Write", table, n)
		}
	}
}

func TestStore_Subscribers_RoundTrip(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	want := []subscribers.Subscriber{sub("ann"), sub("bob")}
	want[1].QuietHours, want[1].OptedOut, want[1].Tags = nil, nil, []string{"duty", "north"}
	err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.UpsertSubscribers(want, "config") })
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Subscribers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Subscribers =\n%+v\nwant\n%+v", got, want)
	}
	// A subscriber removed from the config is removed; imported ones stay.
	err = st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.UpsertSubscribers([]subscribers.Subscriber{sub("cat")}, "import"); err != nil {
			return err
		}
		n, err := tx.RemoveSubscribersNotIn("config", []string{"bob"})
		if n != 1 {
			t.Errorf("RemoveSubscribersNotIn removed %d, want 1", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = st.Subscribers(context.Background())
	if len(got) != 2 || got[0].ID != "bob" || got[1].ID != "cat" {
		t.Errorf("after removal: %+v, want bob and cat", got)
	}
}

func TestStore_RecordRun_Once(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	ctx := context.Background()
	due := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	run := store.ScheduleRun{Schedule: "morning", DueAt: due, FiredAt: due.Add(2 * time.Second)}
	first, err := st.RecordRun(ctx, run)
	if err != nil || !first {
		t.Fatalf("first RecordRun = %v, %v", first, err)
	}
	// The same occurrence again (a second process, a restart in the same
	// minute) must not fire.
	st.Close()
	st = openAt(t, path, clk)
	run.FiredAt = due.Add(40 * time.Second)
	again, err := st.RecordRun(ctx, run)
	if err != nil || again {
		t.Fatalf("second RecordRun = %v, %v; want false", again, err)
	}
	if err := st.FinishRun(ctx, "morning", due, 7, ""); err != nil {
		t.Fatal(err)
	}
	last, ok, err := st.LastRun(ctx, "morning")
	if err != nil || !ok || !last.DueAt.Equal(due) || last.TriggerID != 7 || !last.FiredAt.Equal(due.Add(2*time.Second)) {
		t.Errorf("LastRun = %+v, %v, %v", last, ok, err)
	}
}

func TestStore_ClaimAPIRequest_Lifecycle(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	const route, stale = "POST /api/v1/send", 10 * time.Minute
	claim := func(key, hash string) (store.APIResponse, bool) {
		t.Helper()
		prev, claimed, err := st.ClaimAPIRequest(ctx, key, route, hash, stale)
		if err != nil {
			t.Fatalf("ClaimAPIRequest(%s): %v", key, err)
		}
		return prev, claimed
	}
	if _, ok := claim("k1", "abc"); !ok {
		t.Fatal("a new key was not claimed")
	}
	// A second request with the key sees the first one in progress.
	if prev, ok := claim("k1", "abc"); ok || !prev.InProgress() || prev.Route != route || prev.BodyHash != "abc" {
		t.Fatalf("second claim = %+v, %v; want the in-progress row", prev, ok)
	}
	if err := st.FinishAPIRequest(ctx, "k1", 201, []byte(`{"trigger":"send:1"}`)); err != nil {
		t.Fatal(err)
	}
	want := store.APIResponse{Route: route, BodyHash: "abc", Status: 201, Body: []byte(`{"trigger":"send:1"}`)}
	if prev, ok := claim("k1", "abc"); ok || !reflect.DeepEqual(prev, want) {
		t.Fatalf("claim after finish = %+v, %v; want the answer %+v", prev, ok, want)
	}
	// Finishing or releasing again changes nothing: the first answer stays.
	if err := st.FinishAPIRequest(ctx, "k1", 500, []byte("no")); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseAPIRequest(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := st.APIRequest(ctx, "k1"); err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("APIRequest = %+v, %v, %v; want %+v", got, ok, err, want)
	}

	// A released claim can be claimed again; an answer without a body is kept.
	claim("k2", "def")
	if err := st.ReleaseAPIRequest(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := claim("k2", "def"); !ok {
		t.Fatal("a released key was not claimed again")
	}
	if err := st.FinishAPIRequest(ctx, "k2", 204, nil); err != nil {
		t.Fatal(err)
	}
	if prev, ok := claim("k2", "def"); ok || prev.Status != 204 {
		t.Fatalf("claim after a bodiless answer = %+v, %v", prev, ok)
	}

	// An abandoned claim is taken over once stale, by the same request only.
	claim("k3", "ghi")
	clk.Add(stale + time.Second)
	if prev, ok := claim("k3", "other"); ok || !prev.InProgress() || prev.BodyHash != "ghi" {
		t.Fatalf("stale claim, different body = %+v, %v; want the old row, not claimed", prev, ok)
	}
	if _, ok := claim("k3", "ghi"); !ok {
		t.Fatal("a stale claim was not taken over")
	}
	if _, ok := claim("k3", "ghi"); ok {
		t.Fatal("a fresh takeover was taken over again")
	}
}

func TestStore_Heartbeat_Alive(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	if _, ok, err := st.Alive(ctx, "serve"); ok || err != nil {
		t.Fatalf("Alive before any heartbeat = %v, %v", ok, err)
	}
	if err := st.Heartbeat(ctx, "serve", "host:1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		advance time.Duration
		alive   bool
	}{{10 * time.Second, true}, {25 * time.Second, false}}
	for _, tt := range tests {
		clk.Add(tt.advance)
		holder, ok, err := st.Alive(ctx, "serve")
		if err != nil || ok != tt.alive || holder != "host:1" {
			t.Errorf("after +%v: Alive = %q, %v, %v; want %v", tt.advance, holder, ok, err, tt.alive)
		}
	}
	if err := st.ReleaseHeartbeat(ctx, "serve", "other"); err != nil {
		t.Fatal(err)
	}
	if err := st.Heartbeat(ctx, "serve", "host:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Alive(ctx, "serve"); !ok {
		t.Error("someone else's release removed the lease")
	}
	if err := st.ReleaseHeartbeat(ctx, "serve", "host:1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Alive(ctx, "serve"); ok {
		t.Error("the lease survived its holder's release")
	}
}

func TestStore_Backup(t *testing.T) {
	sqliteOnly(t)
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"), delivery("b"))
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := st.Backup(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(context.Background(), dst); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Backup to the same file = %v, want already exists", err)
	}
	copyStore := openAt(t, dst, clk)
	if got := rows(t, copyStore); len(got) != 2 {
		t.Errorf("backup has %d deliveries, want 2", len(got))
	}
}
