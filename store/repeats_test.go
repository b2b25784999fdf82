package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// createTrigger writes a trigger with key at the clock's time.
func createTrigger(t *testing.T, st *store.Store, key string) store.Trigger {
	t.Helper()
	tr := &store.Trigger{Key: key, Kind: "send"}
	if err := st.Write(context.Background(), func(tx *store.Tx) error {
		_, err := tx.CreateTrigger(tr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return *tr
}

// TestStore_Repeats_FingerprintAndOwnKeys: the earlier broadcasts of one
// content are those with its fingerprint (whatever their key) and those
// under its own keys whose fingerprint is not written yet; the next key
// is the one after the highest taken.
func TestStore_Repeats_FingerprintAndOwnKeys(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, _ := open(t, clk)
	const fp, prefix = "fp-a", "send:aaaa-"

	got, err := st.Repeats(ctx, fp, prefix)
	if err != nil || len(got.Triggers) != 0 || got.Next != 1 {
		t.Fatalf("nothing sent yet: %+v, %v; want no triggers and next 1", got, err)
	}
	first := createTrigger(t, st, prefix+"1")
	if err := st.SetFingerprint(ctx, first.ID, fp); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	keyed := createTrigger(t, st, "send:caller-key") // the same content under a caller's key
	if err := st.SetFingerprint(ctx, keyed.ID, fp); err != nil {
		t.Fatal(err)
	}
	other := createTrigger(t, st, "send:other")
	if err := st.SetFingerprint(ctx, other.ID, "fp-b"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	inFlight := createTrigger(t, st, prefix+"2") // planned, fingerprint not written yet

	got, err = st.Repeats(ctx, fp, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tr := range got.Triggers {
		keys = append(keys, tr.Key)
	}
	if len(keys) != 3 || keys[0] != first.Key || keys[1] != keyed.Key || keys[2] != inFlight.Key || got.Next != 3 {
		t.Fatalf("repeats %v next %d; want %s, %s, %s and next 3", keys, got.Next, first.Key, keyed.Key, inFlight.Key)
	}
	if tr, ok := got.Latest(t0.Add(90 * time.Second)); !ok || tr.Key != inFlight.Key {
		t.Errorf("latest since 14:01:30: %+v %v, want %s", tr, ok, inFlight.Key)
	}
	if _, ok := got.Latest(t0.Add(3 * time.Minute)); ok {
		t.Error("a trigger is reported after the window's start though none was created then")
	}

	// A fingerprint is written once: a second writer does not change it.
	if err := st.SetFingerprint(ctx, inFlight.ID, fp); err != nil {
		t.Fatal(err)
	}
	if err := st.SetFingerprint(ctx, inFlight.ID, "fp-b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Repeats(ctx, "fp-b", "send:bbbb-"); len(got.Triggers) != 1 || got.Triggers[0].Key != "send:other" {
		t.Errorf("fp-b repeats %+v, want only send:other", got.Triggers)
	}
	if got, _ := st.Repeats(ctx, fp, prefix); got.Next != 3 || len(got.Triggers) != 3 {
		t.Errorf("after the fingerprint is written: %d triggers, next %d; want 3 and 3", len(got.Triggers), got.Next)
	}
}
