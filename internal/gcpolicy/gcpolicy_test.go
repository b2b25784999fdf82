package gcpolicy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
	"strings"
	"testing"
)

// The runtime reads GOGC and GOMEMLIMIT once, at start-up, so each case
// runs this test binary afresh with its environment and reads back what
// Apply reported and what the runtime then has in force.
const childEnv = "GCPOLICY_TEST_CHILD"

type childReport struct {
	Settings Settings
	GOGC     uint64 // /gc/gogc:percent after Apply
	Limit    uint64 // /gc/gomemlimit:bytes after Apply
	Text     string
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		s := Apply(nil)
		samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
		metrics.Read(samples)
		out, _ := json.Marshal(childReport{Settings: s, GOGC: samples[0].Value.Uint64(), Limit: samples[1].Value.Uint64(), Text: s.String()})
		fmt.Println(string(out))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, env ...string) childReport {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	// Start from neither variable set, whatever the test run has.
	clean := cmd.Env[:0]
	for _, kv := range cmd.Env {
		if strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			continue
		}
		clean = append(clean, kv)
	}
	cmd.Env = append(clean, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r childReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	return r
}

func TestApply_CrierDefaults(t *testing.T) {
	r := runChild(t)
	if r.Settings.GCPercent != GCPercent || r.Settings.GCFrom != "crier default" || r.GOGC != GCPercent {
		t.Errorf("collector: reported %+v, runtime GOGC %d; want %d from crier's default", r.Settings, r.GOGC, GCPercent)
	}
	// This machine's memory (or cgroup limit) decides the value; it must
	// be set, be what the runtime has, and be the reported one.
	if r.Settings.LimitFrom != "cgroup or system memory" || r.Settings.MemoryLimit <= 0 || uint64(r.Settings.MemoryLimit) != r.Limit {
		t.Errorf("memory limit: reported %+v, runtime %d", r.Settings, r.Limit)
	}
	t.Logf("defaults here: %s", r.Text)
}

func TestApply_EnvironmentWins(t *testing.T) {
	r := runChild(t, "GOGC=150", "GOMEMLIMIT=64MiB")
	want := Settings{GCPercent: 150, GCFrom: "GOGC", MemoryLimit: 64 << 20, LimitFrom: "GOMEMLIMIT"}
	if r.Settings != want || r.GOGC != 150 || r.Limit != 64<<20 {
		t.Errorf("got %+v (runtime GOGC %d, limit %d), want %+v", r.Settings, r.GOGC, r.Limit, want)
	}
	if r.Text != "GOGC=150 (GOGC), memory limit 64 MiB (GOMEMLIMIT)" {
		t.Errorf("text %q", r.Text)
	}
}

func TestApply_GOGCOffStaysOff(t *testing.T) {
	r := runChild(t, "GOGC=off")
	if r.Settings.GCPercent != -1 || r.Settings.GCFrom != "GOGC" || !strings.HasPrefix(r.Text, "GOGC=off (GOGC), memory limit ") {
		t.Errorf("got %+v, %q", r.Settings, r.Text)
	}
	// With collection off, the memory limit is what bounds the heap: crier
	// still sets one.
	if r.Settings.MemoryLimit <= 0 {
		t.Errorf("no memory limit with GOGC=off: %+v", r.Settings)
	}
}
