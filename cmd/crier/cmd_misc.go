package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/scheduler"
)

func checkConfigCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config and render every template against sample data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, tmpl, err := loadConfig(configPath(cmd), e)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "config OK: %d channels, %d subscribers, %d audiences, %d briefings, %d alert rules, %d templates rendered\n",
				len(cfg.Channels), len(cfg.People()), len(cfg.Audiences), len(cfg.Briefings), len(cfg.Alerts), len(tmpl.Names()))
			for _, name := range cfg.ChannelNames() {
				ch := cfg.Channels[name]
				fmt.Fprintf(e.stdout, "  channel %-16s driver %-8s kind %s\n", name, ch.Driver, ch.Kind())
			}
			return nil
		},
	}
}

func briefCmd(e *env) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:     "brief NAME",
		Short:   "Send a briefing now",
		Example: "  crier brief ministers-daily",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("brief needs one briefing name (see briefings: in the config)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				out, err := a.Brief(ctx, args[0], e.now().Truncate(time.Minute))
				if err != nil {
					return err
				}
				switch {
				case out.Created:
					fmt.Fprintf(e.stdout, "briefing %s: planned %d deliveries (%d suppressed) under trigger %s\n", args[0], out.Queued, out.Suppressed, out.Key)
					printFailed(e.stdout, out)
				case out.Planning:
					fmt.Fprintf(e.stdout, "briefing %s is being planned by another crier process (trigger %s, %d deliveries so far)\n", args[0], out.Key, out.Queued)
				default:
					fmt.Fprintf(e.stdout, "briefing %s was already sent this minute (trigger %s): not sending it twice\n", args[0], out.Key)
				}
				return a.deliver(ctx, []int64{out.TriggerID}, wait)
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to keep retrying deliveries before leaving them to crier serve")
	return cmd
}

func sendCmd(e *env) *cobra.Command {
	var r sendRequest
	var chans string
	var wait time.Duration
	var ack ackFlags
	cmd := &cobra.Command{
		Use:     "send",
		Short:   "Send an ad-hoc message to an audience",
		Example: `  crier send --audience clinicians --channels clinician-sms --body "Use paper prescriptions until further notice"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range strings.Split(chans, ",") {
				if c = strings.TrimSpace(c); c != "" {
					r.Channels = append(r.Channels, c)
				}
			}
			if err := ack.apply(&r); err != nil {
				return usageError{err}
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				res, err := a.Send(ctx, r)
				if err != nil {
					return usageError{err}
				}
				out := res.Outcome
				switch {
				case res.RepeatOf != nil:
					fmt.Fprintln(e.stdout, a.repeatLine(res.RepeatOf, "--repeat"))
				case out.Created:
					fmt.Fprintf(e.stdout, "planned %d deliveries (%d suppressed) under trigger %s\n", out.Queued, out.Suppressed, out.Key)
					printFailed(e.stdout, out)
				case out.Planning:
					fmt.Fprintf(e.stdout, "this message is being planned by another crier process (trigger %s, %d deliveries so far)\n", out.Key, out.Queued)
				default:
					fmt.Fprintf(e.stdout, "this message was already sent (trigger %s): not sending it twice\n", out.Key)
				}
				return a.deliver(ctx, []int64{out.TriggerID}, wait)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Audience, "audience", "", "audience name")
	f.StringVar(&chans, "channels", "", "comma-separated channel instances")
	f.StringVar(&r.Subject, "subject", "", "subject (email) / header (Slack)")
	f.StringVar(&r.Body, "body", "", "message text")
	f.BoolVar(&r.Critical, "critical", false, "send ahead of other traffic and through quiet hours")
	f.StringVar(&r.Key, "key", "", "idempotency key: the same key never sends twice (default: an identical message within broadcasts.repeat_window is not sent again)")
	f.BoolVar(&r.Repeat, "repeat", false, "send it even if an identical message was sent within broadcasts.repeat_window")
	ack.register(cmd)
	f.DurationVar(&wait, "wait", 2*time.Minute, "how long to keep retrying deliveries before leaving them to crier serve")
	return cmd
}

func schedulesCmd(e *env) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "Show each briefing's next fire times in its time zone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(configPath(cmd), e)
			if err != nil {
				return err
			}
			for _, name := range sortedKeys(cfg.Briefings) {
				b := cfg.Briefings[name]
				if b.Schedule == "" {
					fmt.Fprintf(e.stdout, "%s: no schedule (send with crier brief %s)\n", name, name)
					continue
				}
				s, err := scheduler.Parse(b.Schedule)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s (%s):\n", name, b.Schedule)
				for _, t := range scheduler.Next(s, e.now(), n) {
					flag := ""
					if c := scheduler.ClockChange(t); c != "" {
						flag = "  ⚠ " + c
					}
					fmt.Fprintf(e.stdout, "  %s  (%s UTC)%s\n", t.Format("Mon 2006-01-02 15:04 MST"), t.UTC().Format("15:04"), flag)
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&n, "n", 5, "how many fire times to show")
	return cmd
}

func backupCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the SQLite database (safe while crier serve runs; on PostgreSQL use pg_dump)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				if err := a.st.Backup(ctx, args[0]); err != nil {
					if errors.Is(err, errors.ErrUnsupported) {
						// PostgreSQL: it says what to use instead.
						return usageError{err}
					}
					return err
				}
				fmt.Fprintf(e.stdout, "backup written to %s\n", args[0])
				return nil
			})
		},
	}
}

// printFailed reports deliveries a plan wrote as failed because their
// message could not be rendered for them.
func printFailed(w io.Writer, out dispatch.Outcome) {
	if out.Failed == 0 {
		return
	}
	fmt.Fprintf(w, "%d deliveries could not be rendered and are logged as failed (reason render_error):\n", out.Failed)
	for _, e := range out.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
}
