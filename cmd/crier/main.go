// Command crier is the incident notification and briefing broadcaster.
// main is thin: it builds the command tree and maps errors to an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	_ "time/tzdata" // IANA zones even on machines without them

	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/internal/gcpolicy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now, gc: gcpolicy.Apply(nil)}
	os.Exit(run(ctx, os.Args[1:], e))
}

// run executes one command line and returns the exit code: 0 success,
// 1 failure, 2 bad usage or invalid config.
func run(ctx context.Context, args []string, e *env) int {
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if l, ok := fields.AsList(err); ok {
		fmt.Fprintf(e.stderr, "crier: the configuration has %d problem(s):\n", len(l))
		for _, p := range l {
			fmt.Fprintf(e.stderr, "  %s\n", p.Error())
		}
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "crier: %v\n", err)
		return 2
	}
	fmt.Fprintf(e.stderr, "crier: %v\n", err)
	return 1
}

// usageError marks a mistake in how a command was called.
type usageError struct{ error }

func absDir(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.Dir(abs), nil
}
