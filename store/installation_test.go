package store_test

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/crier-dev/crier/store/storetest"
)

// Every database is an installation of its own: its id is 128 random
// bits made with it and kept by every later open, so what is derived from
// it (an email's Message-ID) differs between two databases and stays the
// same for one. A backup is the same installation: restored, it carries on.
func TestStore_Installation(t *testing.T) {
	clk := newClock(t0)
	a, pathA := open(t, clk)
	b, _ := open(t, clk)
	id := a.Installation()
	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 16 {
		t.Fatalf("Installation() = %q, want 32 hex digits", id)
	}
	if b.Installation() == id {
		t.Errorf("two databases have the same installation id %q", id)
	}
	dst := filepath.Join(t.TempDir(), "backup.db")
	sqlite := storetest.Engine() == "sqlite"
	if sqlite {
		if err := a.Backup(context.Background(), dst); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openAt(t, pathA, clk).Installation(); got != id {
		t.Errorf("reopened, the installation id is %q, want %q", got, id)
	}
	if !sqlite {
		return
	}
	if got := openAt(t, "sqlite:"+dst, clk).Installation(); got != id {
		t.Errorf("the backup's installation id is %q, want %q", got, id)
	}
}
