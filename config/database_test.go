package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-dev/crier/config"
)

// database.url: sqlite:PATH (relative to the config file) or postgres://…;
// a URL with a password only from the environment or a file; store.path
// as the older spelling; every mistake named with its key.
func TestConfig_Parse_DatabaseURL(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "db-url")
	if err := os.WriteFile(secret, []byte("postgres://crier:s3cret@db.example.org:5432/crier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"CRIER_DATABASE_URL": "postgres://crier:hunter2@10.0.0.5/crier?sslmode=require"})
	for _, c := range []struct {
		name, yaml string
		want       string // the resolved URL, or the problem's key path
		problem    bool
	}{
		{"default", "", "sqlite:" + filepath.Join(dir, "crier.db"), false},
		{"store.path", "store:\n  path: data/x.db\n", "sqlite:" + filepath.Join(dir, "data/x.db"), false},
		{"sqlite url", "database:\n  url: sqlite:y.db\n", "sqlite:" + filepath.Join(dir, "y.db"), false},
		{"absolute sqlite", "database:\n  url: sqlite:/var/lib/crier/crier.db\n", "sqlite:/var/lib/crier/crier.db", false},
		{"postgres without a password", "database:\n  url: postgres://crier@db.example.org/crier\n", "postgres://crier@db.example.org/crier", false},
		{"from the environment", "database:\n  url: ${CRIER_DATABASE_URL}\n", "postgres://crier:hunter2@10.0.0.5/crier?sslmode=require", false},
		{"from a file", "database:\n  url_file: db-url\n", "postgres://crier:s3cret@db.example.org:5432/crier", false},
		{"inline password", "database:\n  url: postgres://crier:inline@db/crier\n", "database.url", true},
		{"password parameter", "database:\n  url: postgres://db/crier?password=inline\n", "database.url", true},
		{"unset variable", "database:\n  url: ${NOT_SET}\n", "database.url", true},
		{"both url and file", "database:\n  url: sqlite:a.db\n  url_file: db-url\n", "database.url", true},
		{"missing file", "database:\n  url_file: nowhere\n", "database.url_file", true},
		{"url and store.path", "database:\n  url: sqlite:a.db\nstore:\n  path: b.db\n", "store.path", true},
		{"unknown scheme", "database:\n  url: mysql://db/crier\n", "database.url", true},
		{"empty sqlite", "database:\n  url: \"sqlite:\"\n", "database.url", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.yaml+minimal), dir, env)
			if c.problem {
				e := find(problems(t, err), c.want)
				if e == nil {
					t.Fatalf("no problem at %s: %v", c.want, err)
				}
				for _, leak := range []string{"inline", "hunter2", "s3cret"} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("the problem prints the password: %v", err)
					}
				}
				if e.Line == 0 {
					t.Errorf("%s reported without its line", c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.DatabaseURL().Reveal(); got != c.want {
				t.Errorf("database URL %q, want %q", got, c.want)
			}
			if got := cfg.DatabaseURL().String(); strings.Contains(got, "://") || strings.Contains(got, "sqlite:") {
				t.Errorf("the URL prints as %q, want it redacted", got)
			}
		})
	}
}

// minimal is the rest of a config that parses.
const minimal = `channels:
  sms:
    driver: sandbox
    sandbox:
      kind: sms
`
