package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// subscriberIDs runs `subscribers list --json` and returns the ids, sorted.
func (h *harness) subscriberIDs() []string {
	h.t.Helper()
	r := h.mustRun("subscribers", "list", "--json")
	var ids []string
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var s struct {
			ID string `json:"id"`
		}
		if err := dec.Decode(&s); err != nil {
			h.t.Fatalf("subscribers list --json: %v\n%s", err, r.stdout)
		}
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// importCSV copies testdata/import_two_bad.csv into the harness directory.
func importCSV(t *testing.T, h *harness) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "import_two_bad.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return h.write("people.csv", string(b))
}

// The two bad rows of testdata/import_two_bad.csv and where they are.
var importBad = []struct{ line, column string }{
	{"line 3", "column phone"},
	{"line 5", "column nations"},
}

// TestCLI_SubscribersImport_AllOrNothing proves a CSV with bad rows is
// refused as a whole: each bad row reported by line and column, and the
// subscribers unchanged.
func TestCLI_SubscribersImport_AllOrNothing(t *testing.T) {
	h := exampleHarness(t)
	before := h.subscriberIDs()
	path := importCSV(t, h)

	r := h.run("subscribers", "import", path)
	if r.code == 0 {
		t.Fatalf("import of a CSV with 2 bad rows: exit 0\n%s", r.stdout)
	}
	for _, b := range importBad {
		if !strings.Contains(r.stderr, b.line+", "+b.column) {
			t.Errorf("stderr does not report %s, %s:\n%s", b.line, b.column, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "nothing was imported") {
		t.Errorf("stderr does not say nothing was imported:\n%s", r.stderr)
	}
	if after := h.subscriberIDs(); !slices.Equal(before, after) {
		t.Errorf("subscribers changed by a refused import:\nbefore %v\nafter  %v", before, after)
	}
}

// TestCLI_SubscribersImport_SkipInvalid proves --skip-invalid imports the
// good rows and still lists the bad ones.
func TestCLI_SubscribersImport_SkipInvalid(t *testing.T) {
	h := exampleHarness(t)
	before := h.subscriberIDs()
	path := importCSV(t, h)

	r := h.mustRun("subscribers", "import", "--skip-invalid", path)
	for _, b := range importBad {
		if !strings.Contains(r.stderr, b.line+", "+b.column) {
			t.Errorf("stderr does not list %s, %s:\n%s", b.line, b.column, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "imported 2 subscribers") {
		t.Errorf("stdout does not say 2 were imported:\n%s", r.stdout)
	}
	after := h.subscriberIDs()
	want := slices.Sorted(slices.Values(append(slices.Clone(before), "imported-one", "imported-two")))
	if !slices.Equal(after, want) {
		t.Errorf("subscribers after --skip-invalid:\n got %v\nwant %v", after, want)
	}
	for _, bad := range []string{"bad-phone", "bad-nation"} {
		if slices.Contains(after, bad) {
			t.Errorf("bad row %s was imported", bad)
		}
	}
	// The imported people survive the next command, which syncs the
	// config's own subscribers: imports are not config-sourced.
	if again := h.subscriberIDs(); !slices.Equal(again, want) {
		t.Errorf("subscribers on the next run:\n got %v\nwant %v", again, want)
	}
}
