package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// retrySeed is one delivery the retry tests write: its trigger, channel,
// final status and how long before the test's clock it was planned.
type retrySeed struct {
	name, trigger, channel, status string
	age                            time.Duration
}

// seedRetry writes deliveries in the given statuses into the harness's
// database, as the dispatcher would have left them, and returns their ids
// by name.
func seedRetry(t *testing.T, h *harness, seeds []retrySeed) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	var now time.Time
	st, err := store.Open(ctx, filepath.Join(h.dir, "crier.db"), store.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]int64{}
	for _, s := range seeds {
		now = testEpoch().Add(-s.age)
		kind := "sms"
		if strings.Contains(s.channel, "email") {
			kind = "email"
		}
		err := st.Write(ctx, func(tx *store.Tx) error {
			tr := &store.Trigger{Key: s.trigger, Kind: "send", Name: "seed"}
			if _, err := tx.CreateTrigger(tr); err != nil {
				return err
			}
			enq, err := tx.Enqueuer(tr.ID)
			if err != nil {
				return err
			}
			defer enq.Close()
			if err := enq.Add(&store.NewDelivery{SubscriberID: s.name, Channel: s.channel, Kind: kind, Address: "addr-" + s.name,
				Status: store.StatusQueued, Text: "hello", NextAt: now, Deadline: now.Add(time.Hour)}); err != nil {
				return err
			}
			return enq.Flush()
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.Claim(ctx, store.ClaimOptions{Channel: s.channel, Limit: 1, Lease: time.Minute})
		if err != nil || len(c) != 1 {
			t.Fatalf("claim %s: %v, %v", s.name, c, err)
		}
		if err := st.Record(ctx, []store.Result{{ID: c[0].ID, Status: s.status, Reason: "seeded"}}); err != nil {
			t.Fatal(err)
		}
		ids[s.name] = c[0].ID
	}
	return ids
}

// retrySeeds are two broadcasts' deliveries in every state retry cares about.
var retrySeeds = []retrySeed{
	{"a-unknown-sms", "send:a", "clinician-sms", store.StatusUnknown, 3 * time.Hour},
	{"a-failed-sms", "send:a", "clinician-sms", store.StatusFailed, 3 * time.Hour},
	{"a-expired-email", "send:a", "ministers-email", store.StatusExpired, 3 * time.Hour},
	{"a-sent-sms", "send:a", "clinician-sms", store.StatusSent, 3 * time.Hour},
	{"b-unknown-sms", "send:b", "clinician-sms", store.StatusUnknown, 30 * time.Minute},
	{"b-unknown-email", "send:b", "ministers-email", store.StatusUnknown, 30 * time.Minute},
	{"b-failed-sms", "send:b", "clinician-sms", store.StatusFailed, 30 * time.Minute},
}

// statusOf reads each delivery's status by name from crier log --json.
func statusOf(h *harness, ids map[string]int64) map[string]string {
	h.t.Helper()
	byID := map[int64]string{}
	for _, r := range h.logRows() {
		byID[r.ID] = r.Status
	}
	out := map[string]string{}
	for name, id := range ids {
		out[name] = byID[id]
	}
	return out
}

// queuedNames lists, sorted, the seeded deliveries now queued.
func queuedNames(h *harness, ids map[string]int64) []string {
	var out []string
	for name, st := range statusOf(h, ids) {
		if st == store.StatusQueued {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestCLI_Retry_Filters: each filter selects exactly the retryable
// deliveries it names (status unknown unless told), the count and the
// breakdown by channel and status come first, and --yes queues them.
func TestCLI_Retry_Filters(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		want  []string
		lines []string // in the summary
	}{
		{"unknown by default", []string{"--channel", "clinician-sms"}, []string{"a-unknown-sms", "b-unknown-sms"},
			[]string{"2 deliveries match (status unknown, channel clinician-sms)", "clinician-sms  unknown  2"}},
		{"a trigger", []string{"--status", "unknown", "--trigger", "send:b"}, []string{"b-unknown-email", "b-unknown-sms"},
			[]string{"2 deliveries match (status unknown, trigger send:b)", "clinician-sms    unknown  1", "ministers-email  unknown  1"}},
		{"failed and expired since 4h", []string{"--status", "failed,expired", "--since", "4h"}, []string{"a-expired-email", "a-failed-sms", "b-failed-sms"},
			[]string{"3 deliveries match (status failed or expired, planned since 2026-11-25 06:00:00 UTC)", "clinician-sms    failed   2", "ministers-email  expired  1"}},
		{"since a time", []string{"--status", "unknown", "--status", "failed", "--since", "2026-11-25T09:00:00Z"}, []string{"b-failed-sms", "b-unknown-email", "b-unknown-sms"},
			[]string{"3 deliveries match (status unknown or failed, planned since 2026-11-25 09:00:00 UTC)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := exampleHarness(t)
			ids := seedRetry(t, h, retrySeeds)
			dry := h.mustRun(append([]string{"retry", "--dry-run"}, tc.flags...)...)
			for _, l := range append(tc.lines, "dry run: nothing was queued") {
				if !strings.Contains(dry.stdout, l) {
					t.Errorf("--dry-run output lacks %q:\n%s", l, dry.stdout)
				}
			}
			if got := queuedNames(h, ids); len(got) != 0 {
				t.Fatalf("--dry-run queued %v", got)
			}
			r := h.mustRun(append([]string{"retry", "--yes"}, tc.flags...)...)
			if !strings.Contains(r.stdout, fmt.Sprintf("queued %d of %d deliveries again", len(tc.want), len(tc.want))) {
				t.Errorf("stdout:\n%s", r.stdout)
			}
			if got := queuedNames(h, ids); !slices.Equal(got, tc.want) {
				t.Errorf("queued %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCLI_Retry_Confirmation: without --yes crier asks at a terminal and
// queues only on yes; without a terminal it refuses, saying to add --yes,
// and queues nothing. Nothing to select is not an error.
func TestCLI_Retry_Confirmation(t *testing.T) {
	h := exampleHarness(t)
	ids := seedRetry(t, h, retrySeeds)
	h.base.stdin = strings.NewReader("")
	r := h.run("retry", "--status", "unknown")
	if r.code != 1 || !strings.Contains(r.stderr, "stdin is not a terminal; add --yes") || !strings.Contains(r.stdout, "3 deliveries match") {
		t.Errorf("no terminal, no --yes: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := queuedNames(h, ids); len(got) != 0 {
		t.Fatalf("queued %v without confirmation", got)
	}

	h.base.isTerminal = func(io.Reader) bool { return true }
	h.base.stdin = strings.NewReader("n\n")
	if r := h.run("retry", "--status", "unknown"); r.code != 1 || !strings.Contains(r.stderr, "Queue these 3 deliveries again? [y/N]") ||
		!strings.Contains(r.stderr, "nothing was queued") {
		t.Errorf("answered no: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if got := queuedNames(h, ids); len(got) != 0 {
		t.Fatalf("queued %v after no", got)
	}
	h.base.stdin = strings.NewReader("yes\n")
	h.mustRun("retry", "--status", "unknown")
	if got := queuedNames(h, ids); !slices.Equal(got, []string{"a-unknown-sms", "b-unknown-email", "b-unknown-sms"}) {
		t.Errorf("queued %v after yes", got)
	}

	if r := h.mustRun("retry", "--status", "unknown", "--channel", "clinician-sms"); !strings.Contains(r.stdout, "no deliveries match") {
		t.Errorf("nothing left to select:\n%s", r.stdout)
	}
}

// TestCLI_Retry_IDs: with ids, a missing id and one that is not
// retryable are each named with what they are, the rest are queued, and
// the exit status is 1; bad usage is refused with 2.
func TestCLI_Retry_IDs(t *testing.T) {
	h := exampleHarness(t)
	ids := seedRetry(t, h, retrySeeds)
	id := func(name string) string { return fmt.Sprint(ids[name]) }
	r := h.run("retry", id("a-unknown-sms"), "999999", id("a-sent-sms"), id("b-failed-sms"), id("a-unknown-sms"))
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	for _, want := range []string{"delivery 999999 does not exist: not queued", "delivery " + id("a-sent-sms") + " is sent, not unknown, failed or expired: not queued",
		"2 of 4 deliveries were not queued"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "queued 2 of 4 deliveries again") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if got := queuedNames(h, ids); !slices.Equal(got, []string{"a-unknown-sms", "b-failed-sms"}) {
		t.Errorf("queued %v, want the unknown and the failed one", got)
	}
	// Queued now, so no longer retryable.
	if r := h.run("retry", id("a-unknown-sms")); r.code != 1 || !strings.Contains(r.stderr, "is queued, not unknown, failed or expired") {
		t.Errorf("retrying a queued delivery: exit %d\n%s", r.code, r.stderr)
	}
	if r := h.mustRun("retry", id("a-expired-email")); !strings.Contains(r.stdout, "queued 1 of 1 deliveries again") {
		t.Errorf("one expired delivery:\n%s", r.stdout)
	}

	for _, bad := range [][]string{
		{"retry"},
		{"retry", "12", "--status", "unknown"},
		{"retry", "twelve"},
		{"retry", "--status", "sent"},
		{"retry", "--status", "lost"},
		{"retry", "--since", "yesterday"},
	} {
		if r := h.run(bad...); r.code != 2 || r.stderr == "" {
			t.Errorf("crier %s: exit %d, stderr %q; want a usage error", strings.Join(bad, " "), r.code, r.stderr)
		}
	}
}
