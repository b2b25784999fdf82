package dispatch

import (
	"testing"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// TestPlanner_Plan_FoldedTargetIsLoggedNotSent: a target folded into the
// next briefing (a minor update under fold_minor) is logged as suppressed,
// reason folded, and nothing of it is queued.
func TestPlanner_Plan_FoldedTargetIsLoggedNotSent(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"))
	inc := incident(t, st, clk.Now())
	out := plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident",
		Name: "open", Incident: inc, Targets: []Target{{Audience: "clinicians", Channels: []string{"sms", "slack"}, Event: templates.EventAlert, Fold: true}}})
	if out.Queued != 0 || out.Suppressed != 2 {
		t.Fatalf("outcome %+v, want 2 suppressed and nothing queued", out)
	}
	for k, row := range logRows(t, st, out.Key) {
		if row.Status != store.StatusSuppressed || row.Reason != "folded" || row.Text != "" {
			t.Errorf("%s: %s/%s with text %q, want suppressed/folded and no body", k, row.Status, row.Reason, row.Text)
		}
	}
}
