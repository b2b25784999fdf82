// Package gcpolicy sets the Go garbage collector the way crier runs best.
//
// crier's live heap is small (a few MiB while it sends: claimed rows,
// composed messages, open connections) but it allocates fast when it
// sends a large briefing. With Go's default GOGC=100 the collector then
// runs every few milliseconds and takes a large share of the CPU that
// sending needs. crier therefore runs with GOGC=400 (the heap may grow to
// five times what is live before a collection) and with a soft memory
// limit of three quarters of the memory it may use (its cgroup's limit
// in a container, else the machine's), so that the heap's growth turns
// into more frequent collection, not an out-of-memory kill, as it nears
// that limit. A quarter is left for what the Go limit does not count:
// SQLite's page cache, which lives outside the Go heap.
//
// Each setting applies only when its environment variable (GOGC,
// GOMEMLIMIT) is unset: an operator's choice wins.
package gcpolicy

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// GCPercent is crier's GOGC.
const GCPercent = 400

// MemoryRatio is the share of the available memory crier's soft limit is.
const MemoryRatio = 0.75

// Settings says what the collector runs with and where each value came from.
type Settings struct {
	GCPercent   int    // -1: collection off (GOGC=off)
	GCFrom      string // "crier default" or "GOGC"
	MemoryLimit int64  // bytes; 0 when none was set
	LimitFrom   string // "cgroup or system memory", "GOMEMLIMIT" or "none"
}

// Apply sets crier's collector defaults (each only when its environment
// variable is unset) and reports what is in force. log receives the
// memory-limit library's own messages; nil discards them.
func Apply(log *slog.Logger) Settings {
	var s Settings
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		s.GCFrom = "GOGC"
		// The runtime has applied GOGC; reading it back means setting a
		// value for an instant, as debug offers no getter.
		s.GCPercent = debug.SetGCPercent(100)
		debug.SetGCPercent(s.GCPercent)
	} else {
		debug.SetGCPercent(GCPercent)
		s.GCPercent, s.GCFrom = GCPercent, "crier default"
	}
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		s.MemoryLimit, s.LimitFrom = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
		return s
	}
	opts := []memlimit.Option{memlimit.WithRatio(MemoryRatio),
		memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem))}
	if log != nil {
		opts = append(opts, memlimit.WithLogger(log))
	}
	limit, err := memlimit.SetGoMemLimitWithOpts(opts...)
	if err != nil || limit <= 0 {
		s.LimitFrom = "none"
		return s
	}
	s.MemoryLimit, s.LimitFrom = limit, "cgroup or system memory"
	return s
}

// String describes the settings for a log line.
func (s Settings) String() string {
	gc := fmt.Sprintf("GOGC=%d (%s)", s.GCPercent, s.GCFrom)
	if s.GCPercent < 0 {
		gc = fmt.Sprintf("GOGC=off (%s)", s.GCFrom)
	}
	if s.MemoryLimit <= 0 {
		return gc + ", no memory limit"
	}
	return fmt.Sprintf("%s, memory limit %d MiB (%s)", gc, s.MemoryLimit>>20, s.LimitFrom)
}
