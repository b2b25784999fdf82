package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/store"
)

// newRoot builds the command tree. Every command takes --config, defaulting
// to $CRIER_CONFIG and then ./config.yaml.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "crier",
		Short:         "Incident notifications and briefings over SMS, email and Slack, with a delivery log",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := e.getenv("CRIER_CONFIG")
	if def == "" {
		def = "config.yaml"
	}
	root.PersistentFlags().String("config", def, "config file (default $CRIER_CONFIG, then ./config.yaml)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(serveCmd(e), checkConfigCmd(e), incidentCmd(e), briefCmd(e), sendCmd(e), previewCmd(e), logCmd(e),
		subscribersCmd(e), demoCmd(e), retryCmd(e), schedulesCmd(e), backupCmd(e), acksCmd(e),
		tokensCmd(e), usersCmd(e), migrateStoreCmd(e))
	return root
}

func configPath(cmd *cobra.Command) string {
	p, _ := cmd.Flags().GetString("config")
	return p
}

// withApp opens the app for a command and closes it afterwards.
func withApp(cmd *cobra.Command, e *env, fn func(ctx context.Context, a *app) error) error {
	a, err := openApp(cmd.Context(), configPath(cmd), e)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(cmd.Context(), a)
}

// deliver sends what the given triggers planned, unless a crier serve is
// running on the same database: then it leaves the work to the server.
func (a *app) deliver(ctx context.Context, triggerIDs []int64, wait time.Duration) error {
	if len(triggerIDs) == 0 {
		return nil
	}
	if holder, alive, err := a.st.Alive(ctx, "server"); err != nil {
		return err
	} else if alive {
		fmt.Fprintf(a.env.stderr, "crier serve (%s) is running on this database: it will deliver these messages; follow them with crier log\n", holder)
		return nil
	}
	last := ""
	progress := func(c map[string]int) {
		line := fmt.Sprintf("delivering: %d queued, %d sending, %d sent, %d failed, %d expired, %d suppressed",
			c[store.StatusQueued], c[store.StatusSending], c[store.StatusSent]+c[store.StatusDelivered], c[store.StatusFailed], c[store.StatusExpired], c[store.StatusSuppressed])
		if line != last {
			fmt.Fprintln(a.env.stderr, line)
			last = line
		}
	}
	until := a.env.now().Add(wait)
	if err := a.disp.Drain(ctx, triggerIDs, until, progress); err != nil && ctx.Err() == nil {
		return err
	}
	n, next, err := a.st.Pending(context.WithoutCancel(ctx), triggerIDs)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(a.env.stderr, "%d deliveries still queued (next retry %s): run crier serve to finish them; they are safe in the database\n",
			n, next.Local().Format(time.DateTime))
	}
	return nil
}

// deadHolder reports whether a lease holder named by hostHolder is a
// process on this host that no longer exists (a crier serve that was
// killed), so a restart need not wait for its lease to run out.
func deadHolder(holder string) bool {
	h, _ := os.Hostname()
	var host string
	var pid int
	if _, err := fmt.Sscanf(holder, "%s pid %d", &host, &pid); err != nil || host != h || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func hostHolder() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", h, os.Getpid())
}

// processHolder names this process in the claims it makes: its host and
// pid (so a restart on the same host knows at once that a killed process
// is gone) and a random part (so a new process with a reused pid, as in a
// container where crier is always pid 1, is not taken for the old one).
func processHolder() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s %x", hostHolder(), b)
}
