package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// TestStore_BeginSignin_Window walks one limit through its window: Max
// attempts are counted, the next is refused with the time until the
// oldest is window old, a forgotten attempt gives its place back, and
// failures older than the window no longer count.
func TestStore_BeginSignin_Window(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, _ := open(t, clk)
	const window = time.Minute
	addr := store.SigninLimit{Key: "addr:192.0.2.7", Max: 3}
	begin := func() (store.SigninAttempt, time.Duration) {
		t.Helper()
		a, wait, err := st.BeginSignin(ctx, window, addr)
		if err != nil {
			t.Fatal(err)
		}
		return a, wait
	}
	for i := range 2 {
		if _, wait := begin(); wait != 0 {
			t.Fatalf("attempt %d: wait %v", i+1, wait)
		}
	}
	clk.Add(10 * time.Second)
	third, wait := begin()
	if wait != 0 {
		t.Fatalf("attempt 3: wait %v", wait)
	}
	if _, wait := begin(); wait != 50*time.Second {
		t.Fatalf("attempt 4 = wait %v, want 50s (until the first two are a minute old)", wait)
	}
	// The third succeeded after all: its place is free again.
	if err := st.ForgetSignin(ctx, third); err != nil {
		t.Fatal(err)
	}
	if _, wait := begin(); wait != 0 {
		t.Fatalf("after forgetting one: wait %v", wait)
	}
	clk.Add(49 * time.Second)
	if _, wait := begin(); wait != time.Second {
		t.Fatalf("a second before the window passes: wait %v", wait)
	}
	clk.Add(time.Second)
	if _, wait := begin(); wait != 0 {
		t.Fatalf("once the first two are a minute old: wait %v", wait)
	}
	if _, wait := begin(); wait != 0 {
		t.Fatalf("the second place freed: wait %v", wait)
	}
	if _, wait := begin(); wait != 10*time.Second {
		t.Fatalf("full again = wait %v, want 10s (until the attempt at 0:10 is a minute old)", wait)
	}
}

// TestStore_BeginSignin_EveryLimit proves an attempt counts under each of
// its limits, and one full limit refuses it without counting it under the
// others.
func TestStore_BeginSignin_EveryLimit(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	user := store.SigninLimit{Key: "user:alice", Max: 2}
	for i, addr := range []string{"addr:a", "addr:b", "addr:c", "addr:c", "addr:c"} {
		_, wait, err := st.BeginSignin(ctx, time.Minute, store.SigninLimit{Key: addr, Max: 2}, user)
		if err != nil {
			t.Fatal(err)
		}
		if want := i >= 2; (wait > 0) != want {
			t.Fatalf("attempt %d from %s: wait %v, want limited %v", i+1, addr, wait, want)
		}
	}
	// addr:c was refused three times and counted none of them.
	for range 2 {
		if _, wait, err := st.BeginSignin(ctx, time.Minute, store.SigninLimit{Key: "addr:c", Max: 2}); err != nil || wait != 0 {
			t.Fatalf("addr:c alone: wait %v, %v; want room for two", wait, err)
		}
	}
}

// TestStore_BeginSignin_SharedByEveryProcess proves two stores on one
// database (two crier servers) keep one count, also when attempts reach
// both at once: exactly Max are counted.
func TestStore_BeginSignin_SharedByEveryProcess(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	a, path := open(t, clk)
	b := openAt(t, path, clk)
	lim := store.SigninLimit{Key: "addr:198.51.100.9", Max: 5}
	const n = 20
	var mu sync.Mutex
	counted := 0
	var wg sync.WaitGroup
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, wait, err := st.BeginSignin(ctx, time.Minute, lim)
			if err != nil {
				t.Error(err)
				return
			}
			if wait == 0 {
				mu.Lock()
				counted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counted != lim.Max {
		t.Errorf("%d attempts through two stores at once: %d counted, want %d", n, counted, lim.Max)
	}
}
