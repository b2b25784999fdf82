package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/postgres"
)

// migrateStoreCmd copies a whole database into a new, empty one: SQLite to
// PostgreSQL, or between any two databases crier runs on.
func migrateStoreCmd(e *env) *cobra.Command {
	var from, fromEnv, to, toEnv string
	cmd := &cobra.Command{
		Use:   "migrate-store (--to URL | --to-env NAME) [--from URL | --from-env NAME]",
		Short: "Copy the whole database into a new, empty one (SQLite to PostgreSQL)",
		Long: `Copy every table of a database into a new, empty one, ids and all: the
embedded SQLite file into PostgreSQL, or between any two databases crier
runs on (sqlite:PATH, postgres://…). The target becomes the same
installation as the source (email Message-IDs carry on); afterwards point
database.url at it and keep the source as a backup.

The source must be idle: stop crier serve (and any crier command sending)
first; migrate-store refuses while a server's heartbeat is alive, a delivery
is claimed or being sent, or a plan is under way. The target must be empty:
a database or schema crier has not used. The copy is one transaction on the
target: it is all there, counted on both sides, or nothing is.

The source defaults to the database.url of the config (--config). A URL
with a password is best given through the environment (--to-env NAME,
--from-env NAME), out of shell history and process lists. Passwords are
never printed.

Exit status: 0 copied; 2 refused, or bad flags (nothing written); 1 the
copy failed (nothing written).`,
		Example: `  export CRIER_NEW_DATABASE_URL='postgres://crier:…@db.internal:5432/crier'
  crier migrate-store --from sqlite:crier.db --to-env CRIER_NEW_DATABASE_URL
  crier migrate-store --config config.yaml --to-env CRIER_NEW_DATABASE_URL   # the config's database`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dst, err := databaseFlag(e, "--to", to, "--to-env", toEnv)
			if err != nil {
				return err
			}
			if dst.url == "" {
				return usageError{errors.New("migrate-store needs a target: --to URL or --to-env NAME (an environment variable holding the URL)")}
			}
			src, err := databaseFlag(e, "--from", from, "--from-env", fromEnv)
			if err != nil {
				return err
			}
			if src.url == "" {
				if src, err = configDatabase(cmd, e); err != nil {
					return err
				}
			}
			return migrateStore(cmd.Context(), e, src, dst)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the database to copy: sqlite:PATH or postgres://… (default: database.url of the config)")
	f.StringVar(&fromEnv, "from-env", "", "the name of an environment variable holding the source's URL")
	f.StringVar(&to, "to", "", "the new, empty database: postgres://… or sqlite:PATH")
	f.StringVar(&toEnv, "to-env", "", "the name of an environment variable holding the target's URL (keeps a password out of shell history)")
	return cmd
}

// database is a database.url and where it came from.
type database struct {
	url  string
	from string // "--to", "$NAME", "database.url of config.yaml"
}

// shown is the URL for people: never a password.
func (d database) shown() string { return redactURL(d.url) }

// redactURL is a database URL without its password.
func redactURL(u string) string {
	if isPostgresURL(u) {
		return postgres.Redact(u)
	}
	return u
}

func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// databaseFlag reads a database from a URL flag or an environment
// variable named by its -env twin; "" when neither is given.
func databaseFlag(e *env, flag, value, envFlag, envName string) (database, error) {
	var d database
	switch {
	case value != "" && envName != "":
		return d, usageError{fmt.Errorf("%s and %s are both given: keep one", flag, envFlag)}
	case envName != "":
		d.url, d.from = strings.TrimSpace(e.getenv(envName)), "$"+envName
		if d.url == "" {
			return d, usageError{fmt.Errorf("%s %s: the environment variable %s is not set or empty", envFlag, envName, envName)}
		}
	case value != "":
		d.url, d.from = strings.TrimSpace(value), flag
		if hasPassword(d.url) {
			fmt.Fprintf(e.stderr, "note: the URL given to %s holds a password, which shell history and process lists may keep: %s NAME reads it from the environment instead\n", flag, envFlag)
		}
	default:
		return d, nil
	}
	if !strings.HasPrefix(d.url, "sqlite:") && !isPostgresURL(d.url) {
		shown := d.url
		if i := strings.Index(shown, "://"); i > 0 {
			shown = shown[:i+3] + "…"
		}
		return d, usageError{fmt.Errorf("%s %s: a database is sqlite:PATH or postgres://user@host:5432/database", d.from, shown)}
	}
	return d, nil
}

// hasPassword reports whether a database URL carries a password.
func hasPassword(raw string) bool {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return strings.Contains(raw, "password=")
}

// configDatabase is the database.url of the config, the source when no
// --from is given.
func configDatabase(cmd *cobra.Command, e *env) (database, error) {
	path := configPath(cmd)
	if _, err := os.Stat(path); err != nil {
		return database{}, usageError{fmt.Errorf("migrate-store needs a source: --from URL, --from-env NAME, or --config naming the config whose database.url it is (%s: %v)", path, err)}
	}
	cfg, _, err := loadConfig(path, e)
	if err != nil {
		return database{}, err
	}
	return database{url: cfg.DatabaseURL().Reveal(), from: "database.url of " + path}, nil
}

// migrateStore opens both databases, copies one into the other and says
// what it did and what to do next.
func migrateStore(ctx context.Context, e *env, src, dst database) error {
	if p, ok := strings.CutPrefix(src.url, "sqlite:"); ok {
		// Opening a missing file would make an empty database to copy.
		if _, err := os.Stat(p); err != nil {
			return usageError{fmt.Errorf("migrate-store: the source %s (%s) cannot be read: %v", src.shown(), src.from, err)}
		}
	}
	if src.url == dst.url {
		return usageError{fmt.Errorf("migrate-store: the source and the target are the same database (%s)", src.shown())}
	}
	from, err := store.OpenURL(ctx, src.url, store.WithClock(e.now))
	if err != nil {
		return fmt.Errorf("migrate-store: open the source: %w", err)
	}
	defer from.Close()
	to, err := store.OpenURL(ctx, dst.url, store.WithClock(e.now))
	if err != nil {
		return fmt.Errorf("migrate-store: open the target: %w", err)
	}
	defer to.Close()

	fmt.Fprintf(e.stderr, "copying %s (%s, %s)\n     to %s (%s, %s)\n", from.Path(), from.Engine(), src.from, to.Path(), to.Engine(), dst.from)
	start := time.Now()
	res, err := store.Copy(ctx, to, from, store.CopyOptions{Dead: deadHolder, Progress: progressPrinter(e.stderr)})
	if err != nil {
		var refused *store.CopyRefused
		if errors.As(err, &refused) {
			return usageError{fmt.Errorf("migrate-store refused: %s", refused.Reason)}
		}
		return fmt.Errorf("migrate-store: %w; nothing was written to the target (the copy is one transaction): run it again once that is put right", err)
	}
	printCopy(e.stdout, from, to, res, time.Since(start))
	return nil
}

// progressPrinter reports a large table's progress every few seconds.
func progressPrinter(w io.Writer) func(table string, done, total int64) {
	var last time.Time
	return func(table string, done, total int64) {
		if done == total || time.Since(last) < 3*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "  %s: %d of %d rows\n", table, done, total)
	}
}

// printCopy says what was copied, that it was counted, and what next.
func printCopy(w io.Writer, from, to *store.Store, res store.CopyResult, took time.Duration) {
	fmt.Fprintf(w, "copied %s to %s in %s:\n", from.Path(), to.Path(), took.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-18s %12s %12s %12s\n", "table", "source rows", "copied", "target rows")
	var src, target int64
	for _, t := range res.Tables {
		fmt.Fprintf(w, "  %-18s %12d %12d %12d\n", t.Table, t.Source, t.Copied, t.Target)
		src += t.Source
		target += t.Target
	}
	fmt.Fprintf(w, "  %-18s %12d %12d %12d\n", "total", src, res.Rows, target)
	fmt.Fprintf(w, "every table holds as many rows in the target as in the source (%d tables, %d rows).\n", len(res.Tables), res.Rows)
	if res.Repaired > 0 {
		fmt.Fprintf(w, "%d text values held bytes PostgreSQL cannot store (invalid UTF-8 or NUL) and were stored with U+FFFD in their place.\n", res.Repaired)
	}
	fmt.Fprintf(w, "the target is installation %s, as the source is: the same installation, moved (email Message-IDs carry on).\n", res.Installation)
	fmt.Fprintln(w, "next:")
	if to.Engine() == "sqlite" {
		fmt.Fprintf(w, "  1. point database.url at it: url: sqlite:%s\n", to.Path())
	} else {
		fmt.Fprintf(w, "  1. point database.url at %s: url: ${CRIER_DATABASE_URL} with the URL in the environment, or url_file: a file holding it\n", to.Path())
	}
	if to.Clustered() {
		fmt.Fprintln(w, "  2. start crier serve on it (several servers may run on one PostgreSQL database) and check crier log")
	} else {
		fmt.Fprintln(w, "  2. start crier serve on it and check crier log")
	}
	fmt.Fprintf(w, "  3. keep %s as a backup, and do not serve from it again: two databases of one installation would give different messages the same Message-ID\n", from.Path())
}
