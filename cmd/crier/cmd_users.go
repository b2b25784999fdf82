package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
)

// Dashboard users: `crier users add|list|remove`. The password is read
// from stdin or typed at a prompt, never given as a flag, which would land
// in shell history and in every process listing.

func usersCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Add, list and remove dashboard users (username and password sign-in)",
	}
	cmd.AddCommand(usersAddCmd(e), usersListCmd(e), usersRemoveCmd(e))
	return cmd
}

func usersAddCmd(e *env) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Add a user; the password comes from stdin or a prompt",
		Long: fmt.Sprintf(`Add a dashboard user with a role (viewer, operator or admin). At a terminal crier asks for the
password twice without showing it; otherwise it reads the first line of stdin:

  crier users add j.smith --role operator < password.txt

Passwords have at least %d characters (a few words are easiest) and at most %d bytes; crier stores
a bcrypt hash.`, store.MinPasswordLen, store.MaxPasswordLen),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !store.ValidName(name) {
				return usageError{fmt.Errorf("user name %q: %s", name, store.NameRule)}
			}
			if err := checkRoleFlag(role); err != nil {
				return err
			}
			pw, err := e.readPassword(cmd.Context(), name)
			if err != nil {
				return err
			}
			hash, err := store.HashPassword(pw, store.DefaultPasswordCost)
			if err != nil {
				return err
			}
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				err := a.st.AddUser(ctx, name, role, hash)
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("a user named %q exists: crier users remove %s first to replace it", name, name)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "added user %s (%s); they sign in to the dashboard at /signin\n", name, role)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	return cmd
}

func usersListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users: name, role, created (never the password)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				list, err := a.st.Users(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					for _, u := range list {
						if err := enc.Encode(u); err != nil {
							return err
						}
					}
					return nil
				}
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
				for _, u := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, when(u.Created))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func usersRemoveCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user and sign out their dashboard sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, e, func(ctx context.Context, a *app) error {
				err := a.st.RemoveUser(ctx, args[0])
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no user named %q (crier users list shows them)", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed user %s; their dashboard sessions are signed out\n", args[0])
				return nil
			})
		},
	}
}

// readPassword prompts twice at a terminal, with echo off, or reads the
// first line of stdin when it is a pipe or a file.
func (e *env) readPassword(ctx context.Context, name string) (fields.Secret, error) {
	in := e.stdin
	if in == nil {
		in = os.Stdin
	}
	f, isFile := in.(*os.File)
	if isFile {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return e.promptPassword(ctx, f, name)
		}
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on stdin: pipe it in (crier users add NAME --role ROLE < password.txt) or run at a terminal to be asked")
	}
	return fields.Secret(pw), nil
}

// promptPassword asks at the terminal twice. Echo is turned off with
// stty: golang.org/x/term is not in the module graph, and stty is on every
// Unix system crier runs on.
func (e *env) promptPassword(ctx context.Context, tty *os.File, name string) (fields.Secret, error) {
	stty := func(arg string) error {
		c := exec.CommandContext(context.WithoutCancel(ctx), "stty", arg)
		c.Stdin = tty
		return c.Run()
	}
	if err := stty("-echo"); err != nil {
		return "", fmt.Errorf("cannot hide the password as it is typed (stty: %w): pipe it on stdin instead (crier users add %s --role ROLE < password.txt)", err, name)
	}
	defer func() {
		_ = stty("echo")
	}()
	r := bufio.NewReader(tty)
	ask := func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		line, err := r.ReadString('\n')
		fmt.Fprintln(e.stderr)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	first, err := ask(fmt.Sprintf("Password for %s: ", name))
	if err != nil {
		return "", err
	}
	again, err := ask("Again, to check: ")
	if err != nil {
		return "", err
	}
	if first != again {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return fields.Secret(first), nil
}
