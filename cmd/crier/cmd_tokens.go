package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
)

// API tokens in the database: `crier tokens create|list|revoke`. Config
// tokens (server.tokens) stay for bootstrap; these are the ones to hand out
// and revoke without a restart.

func tokensCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke API tokens (viewer, operator or admin)",
		Long: `API tokens let scripts call the JSON API (Authorization: Bearer <token>) and let people sign in to the
dashboard. Roles: viewer reads; operator also opens and updates incidents and sends broadcasts; admin
also manages subscribers, tokens and config. A token is shown once, when it is created; crier keeps
only a hash of it. Tokens in server.tokens in the config keep working beside these.`,
	}
	cmd.AddCommand(tokensCreateCmd(e), tokensListCmd(e), tokensRevokeCmd(e))
	return cmd
}

// checkRoleFlag refuses an unknown --role before anything is opened.
func checkRoleFlag(role string) error {
	if role == "" {
		return usageError{errors.New("--role is required: viewer, operator or admin")}
	}
	if !store.ValidRole(role) {
		return usageError{fmt.Errorf("--role %q: must be viewer (read), operator (incidents and broadcasts) or admin (everything)", role)}
	}
	return nil
}

func tokensCreateCmd(e *env) *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE",
		Short: "Create a token and print it once",
		Long: `Create a random API token and print it on stdout, once: crier stores only its hash, so copy it
now (or redirect stdout to a file). NAME says who or what holds it (ci, pager-bridge, j.smith).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !store.ValidName(name) {
				return usageError{fmt.Errorf("--name %q: %s", name, store.NameRule)}
			}
			if err := checkRoleFlag(role); err != nil {
				return err
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				for _, t := range a.cfg.Server.Tokens {
					if t.Name == name {
						return usageError{fmt.Errorf("--name %q: server.tokens in the config has a token of that name; choose another, so logs say which one was used", name)}
					}
				}
				tok, err := a.st.CreateToken(ctx, name, role)
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("--name %q: a token of that name exists (crier tokens list); revoked tokens keep their names, so choose another", name)
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, tok.Reveal())
				fmt.Fprintf(e.stderr, "created token %s (%s). It is shown once, above: store it now; crier keeps only a hash.\n"+
					"Use it as Authorization: Bearer <token>, or sign in to the dashboard with it. Revoke it with crier tokens revoke %s.\n", name, role, name)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "who or what holds the token (required)")
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	return cmd
}

func tokensListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens: name, role, created, last used, revoked (never the token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				list, err := a.st.Tokens(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					for _, t := range list {
						if err := enc.Encode(t); err != nil {
							return err
						}
					}
					return nil
				}
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST USED\tREVOKED")
				for _, t := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, when(t.Created), when(t.LastUsed), when(t.Revoked))
				}
				if len(a.cfg.Server.Tokens) > 0 {
					fmt.Fprintf(tw, "(and %d token(s) from server.tokens in the config)\n", len(a.cfg.Server.Tokens))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

// when prints a time for the tables, "-" for never.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func tokensRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token at once (the running server refuses it from the next request)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				err := a.st.RevokeToken(ctx, args[0])
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no token named %q (crier tokens list shows them; tokens in server.tokens are removed from the config instead)", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "revoked token %s; its dashboard sessions are signed out\n", args[0])
				return nil
			})
		},
	}
}

// authOptions turns on database tokens and dashboard sign-in for serve.
// Dashboard sessions signed in with a server.tokens token are keyed by
// server.session_secret, else webhooks.ack_secret: secrets every server
// on the database has and the database does not. Without either, such a
// session works only on the server that signed it in, which on a
// database shared by several servers is worth a warning.
func (a *app) authOptions() *server.AuthOptions {
	secret := a.cfg.Server.SessionSecret
	if !secret.IsSet() {
		secret = a.cfg.Webhooks.AckSecret
	}
	if !secret.IsSet() && a.st.Clustered() && len(a.cfg.Server.Tokens) > 0 {
		a.log.Warn("dashboard sessions signed in with a server.tokens token work only on the server that signed them in: " +
			"set server.session_secret, the same on every server")
	}
	return &server.AuthOptions{Store: a.st, PublicURL: a.cfg.Server.PublicURL, SessionSecret: secret}
}
