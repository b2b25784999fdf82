package loadtest

import (
	"os"
	"testing"

	"github.com/crier-dev/crier/internal/gcpolicy"
)

// TestMain runs the package with the garbage-collector settings the crier
// binary applies at start-up, so that the benchmarks measure crier as it
// runs (GOGC and GOMEMLIMIT in the environment still win, as they do for
// the binary).
func TestMain(m *testing.M) {
	if os.Getenv(sinkProcEnv) == "1" {
		runSinkProcess() // a separate process, with Go's own defaults
	}
	gcpolicy.Apply(nil)
	os.Exit(m.Run())
}
