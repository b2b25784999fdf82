// Package storetest gives tests a real database of either engine: a
// SQLite file in a temporary directory, or a fresh schema on the test
// PostgreSQL server named by CRIER_TEST_POSTGRES.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Engine is the engine tests of the store run on: CRIER_TEST_ENGINE
// (sqlite, the default, or postgres).
func Engine() string {
	if e := os.Getenv("CRIER_TEST_ENGINE"); e != "" {
		return e
	}
	return "sqlite"
}

// URL is a database.url for a new, empty database on Engine(): a file in
// tb's temporary directory, or a schema of its own on the PostgreSQL
// server, dropped when tb ends.
func URL(tb testing.TB) string {
	tb.Helper()
	if Engine() == "postgres" {
		return Postgres(tb)
	}
	return "sqlite:" + filepath.Join(tb.TempDir(), "crier.db")
}

// Postgres is the URL of a new, empty schema on the test PostgreSQL server
// (CRIER_TEST_POSTGRES, a postgres:// URL), dropped when tb ends; the
// test's connections must be closed by then (a Cleanup registered after
// this one runs first). Without the variable the test is skipped, or fails
// where CRIER_REQUIRE_POSTGRES=1 (CI).
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("CRIER_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CRIER_REQUIRE_POSTGRES") == "1" {
			tb.Fatal("CRIER_TEST_POSTGRES is not set, and CRIER_REQUIRE_POSTGRES=1: PostgreSQL tests must run")
		}
		tb.Skip("CRIER_TEST_POSTGRES is not set (a postgres:// URL of a test server): PostgreSQL tests skipped")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "crier_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to CRIER_TEST_POSTGRES: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("CRIER_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
