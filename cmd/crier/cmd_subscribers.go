package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

func subscribersCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "subscribers", Short: "List and import subscribers"}
	cmd.AddCommand(subscribersListCmd(e), subscribersImportCmd(e))
	return cmd
}

func subscribersListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List subscribers (from the config and imported)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				list, err := a.st.Subscribers(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					for _, s := range list {
						if err := enc.Encode(s); err != nil {
							return err
						}
					}
					return nil
				}
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tROLES\tNATIONS\tLOCALE\tPHONE\tEMAIL\tSLACK")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, strings.Join(s.Roles, ","), strings.Join(s.Nations, ","),
						s.Locale, s.Phone, s.Email, s.Slack)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func subscribersImportCmd(e *env) *cobra.Command {
	var skip bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import subscribers from CSV (all-or-nothing unless --skip-invalid)",
		Long: `Import subscribers from a CSV file with a header row. Columns: id, name, roles, nations, tags, locale,
timezone, phone, email, slack, quiet_hours (lists separated by ';', quiet hours as 22:00-07:00).
Every bad row is reported by line and column. By default nothing is imported if any row is bad;
--skip-invalid imports the good rows and lists the rest. Existing ids are updated.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := subscribers.ReadCSV(f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			for _, re := range res.Errors {
				fmt.Fprintf(e.stderr, "%s: %s\n", args[0], re.Error())
			}
			if len(res.Errors) > 0 && !skip {
				return fmt.Errorf("%s: %d problem(s); nothing was imported (fix them, or use --skip-invalid to import the %d good rows)",
					args[0], len(res.Errors), len(res.Subscribers))
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				if err := a.st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers(res.Subscribers, "import") }); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "imported %d subscribers", len(res.Subscribers))
				if len(res.Errors) > 0 {
					fmt.Fprintf(e.stdout, "; skipped %d problem(s) listed above", len(res.Errors))
				}
				fmt.Fprintln(e.stdout)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&skip, "skip-invalid", false, "import the good rows and list the bad ones")
	return cmd
}
