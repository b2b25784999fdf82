package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/crier-dev/crier/internal/cluster"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// Two processes' members on one PostgreSQL database: one holds a role,
// the other waits for it; when the holder's session ends (as when its
// process dies) the other takes the role at its next try, and a role
// given up is taken at once.
func TestMember_Hold_TakenOverWhenTheHolderGoes(t *testing.T) {
	url := storetest.Postgres(t)
	ctx := context.Background()
	open := func() *store.Store {
		st, err := store.OpenURL(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := open(), open()
	every := 50 * time.Millisecond
	ma := cluster.New(func(ctx context.Context) (cluster.Locks, error) { return a.Locks(ctx) }, every, nil)
	mb := cluster.New(func(ctx context.Context) (cluster.Locks, error) { return b.Locks(ctx) }, every, nil)
	runA, stopA := context.WithCancel(ctx)
	defer stopA()
	runB, stopB := context.WithCancel(ctx)
	defer stopB()
	go ma.Run(runA)
	go mb.Run(runB)

	lostA, releaseA, err := ma.Hold(ctx, "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		if _, _, err := mb.Hold(runB, "scheduler"); err == nil {
			close(got)
		}
	}()
	select {
	case <-got:
		t.Fatal("two members hold the scheduler at once")
	case <-time.After(5 * every):
	}
	releaseA()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the role given up was not taken by the other member")
	}
	// b holds it now; a waits; b's session ends (its process dies).
	gotA := make(chan (<-chan struct{}), 1)
	go func() {
		if lost, _, err := ma.Hold(runA, "scheduler"); err == nil {
			gotA <- lost
		}
	}()
	select {
	case <-gotA:
		t.Fatal("a took the role b holds")
	case <-time.After(5 * every):
	}
	stopB()
	select {
	case lost := <-gotA:
		select {
		case <-lost:
			t.Fatal("the role taken over is already lost")
		default:
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the role was not taken over within 5s of its holder's session ending")
	}
	select {
	case <-lostA:
		t.Fatal("a's first hold, given up, reports lost")
	default:
	}
}

// On SQLite the process is the whole cluster: a role is held at once, and
// a second member of the same process waits for it.
func TestMember_Hold_SQLite(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/crier.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m1 := cluster.New(func(ctx context.Context) (cluster.Locks, error) { return st.Locks(ctx) }, 20*time.Millisecond, nil)
	m2 := cluster.New(func(ctx context.Context) (cluster.Locks, error) { return st.Locks(ctx) }, 20*time.Millisecond, nil)
	_, release, err := m1.Hold(ctx, "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, _, err := m2.Hold(short, "scheduler"); err == nil {
		t.Fatal("a second member held the role the first holds")
	}
	release()
	if _, _, err := m2.Hold(ctx, "scheduler"); err != nil {
		t.Fatal(err)
	}
}
