package store_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// On PostgreSQL, Backup writes nothing and says what to use instead
// (pg_dump), as an unsupported operation, without the URL's password.
func TestStore_Backup_PostgresSaysPgDump(t *testing.T) {
	if storetest.Engine() != "sqlite" {
		t.Skip("this test names its engine itself")
	}
	u, err := url.Parse(storetest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server trusts its clients: a password is accepted, unused.
	const password = "hunter2-not-printed"
	u.User = url.UserPassword(u.User.Username(), password)
	st, err := store.OpenURL(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dst := filepath.Join(t.TempDir(), "backup.db")
	err = st.Backup(context.Background(), dst)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Backup on PostgreSQL = %v, want errors.ErrUnsupported", err)
	}
	for _, want := range []string{"pg_dump", "PostgreSQL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Backup's error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("Backup's error shows the password: %q", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("Backup on PostgreSQL left a file at %s (%v)", dst, err)
	}
}
