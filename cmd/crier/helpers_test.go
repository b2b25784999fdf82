package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The CLI tests run crier in-process through run(ctx, args, env): every
// test gets its own directory with its own config and SQLite file, a fixed
// clock, and an environment that holds only what the test put in it.

// testEpoch is the fake "now" of every CLI test: a Wednesday at 10:00
// Europe/London (UTC in November), outside every quiet-hours window and
// more than schedule.grace after the example's 08:00 briefing.
func testEpoch() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// running server (slog from several goroutines) and reads from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is one test's crier installation: a directory, a config file in
// it, an environment and a clock.
type harness struct {
	t      testing.TB
	dir    string
	config string

	mu   sync.Mutex
	now  time.Time
	vars map[string]string
	// ticking, when set, makes the clock advance with real time from now,
	// for flows whose retries and leases must see time pass.
	ticking time.Time

	// base is applied to every env the harness builds (channel options).
	base env
}

// newHarness writes yaml as config.yaml in a fresh temporary directory.
func newHarness(t testing.TB, yaml string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, config: filepath.Join(dir, "config.yaml"), now: testEpoch(), vars: map[string]string{}}
	h.write("config.yaml", yaml)
	return h
}

// exampleYAML is config.example.yaml as shipped at the repository root.
func exampleYAML(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("read the example config: %v", err)
	}
	return string(b)
}

// exampleHarness is a harness on a copy of config.example.yaml; its store
// path (crier.db) is relative to the copy, so each test has its own database.
func exampleHarness(t testing.TB) *harness {
	t.Helper()
	return newHarness(t, exampleYAML(t))
}

// write creates a file (and its directories) under the harness directory.
func (h *harness) write(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) setenv(k, v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vars[k] = v
}

func (h *harness) getenv(k string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vars[k]
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ticking.IsZero() {
		return h.now.Add(time.Since(h.ticking))
	}
	return h.now
}

// tick makes the clock advance in real time from its current value.
func (h *harness) tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ticking = time.Now()
}

func (h *harness) setNow(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = t
}

// env builds the environment one run gets.
func (h *harness) env(stdout, stderr *syncBuffer) *env {
	e := h.base
	e.stdout, e.stderr, e.getenv, e.now = stdout, stderr, h.getenv, h.clock
	return &e
}

// result is what one CLI invocation produced.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// run executes crier with args and --config pointing at the harness config.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runCtx(context.Background(), args...)
}

func (h *harness) runCtx(ctx context.Context, args ...string) result {
	h.t.Helper()
	var out, errb syncBuffer
	full := append(append([]string(nil), args...), "--config", h.config)
	code := run(ctx, full, h.env(&out, &errb))
	r := result{args: args, code: code, stdout: out.String(), stderr: errb.String()}
	assertNoPanic(h.t, r)
	return r
}

// mustRun runs and fails the test unless the exit code is 0.
func (h *harness) mustRun(args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 {
		h.t.Fatalf("crier %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// assertNoPanic fails if the output carries a Go panic or stack trace.
func assertNoPanic(t testing.TB, r result) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "runtime/debug", ".go:"} {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("crier %s printed %q (a panic or stack trace):\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), s, r.stdout, r.stderr)
		}
	}
}

// logRow is one line of `crier log --json`, with the raw keys kept.
type logRow struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind"`
	Channel    string    `json:"channel"`
	Subscriber string    `json:"subscriber"`
	Address    string    `json:"address"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason"`
	Attempts   int       `json:"attempts"`
	ProviderID string    `json:"provider_id"`
	Trigger    string    `json:"trigger"`
	IncidentID string    `json:"incident_id"`
	CreatedAt  time.Time `json:"created_at"`
	Detail     string    `json:"detail"`

	keys map[string]json.RawMessage
}

// parseJSONLines decodes one JSON object per non-empty line.
func parseJSONLines(t testing.TB, out string) []logRow {
	t.Helper()
	var rows []logRow
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r logRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log --json line %d is not JSON: %v\n%s", n, err, line)
		}
		if err := json.Unmarshal([]byte(line), &r.keys); err != nil {
			t.Fatalf("log --json line %d is not a JSON object: %v\n%s", n, err, line)
		}
		rows = append(rows, r)
	}
	return rows
}

// logRows runs `crier log --json` with extra filters and parses it.
func (h *harness) logRows(filters ...string) []logRow {
	h.t.Helper()
	r := h.mustRun(append([]string{"log", "--json"}, filters...)...)
	return parseJSONLines(h.t, r.stdout)
}

// countBy counts rows by a key function.
func countBy(rows []logRow, key func(logRow) string) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[key(r)]++
	}
	return m
}

// assertNoSecrets fails if any secret appears in any of the texts.
func assertNoSecrets(t *testing.T, where string, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains secret #%d (of %d characters)", where, i+1, len(s))
		}
	}
}

// lineOf is the 1-based line of the first line of text containing sub.
func lineOf(t *testing.T, text, sub string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("%q is not in the YAML", sub)
	return 0
}
