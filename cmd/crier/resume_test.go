package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// A broadcast that a crier process was planning chunk by chunk when it
// died (the trigger holds the request and the last subscriber planned, and
// its planner's lease has run out) is finished when `crier serve` starts,
// and sent: the clinicians it had not reached get one message each, those
// it had planned none more.
func TestServe_FinishesPlanLeftPartWay(t *testing.T) {
	h := exampleHarness(t)
	var csv strings.Builder
	csv.WriteString("id,name,roles,nations,phone,email\n")
	for i := range 300 {
		fmt.Fprintf(&csv, "crowd-%03d,Dr Crowd %d,clinician,wales,+4474009%05d,crowd%d@example.org\n", i, i, i, i)
	}
	h.mustRun("subscribers", "import", h.write("crowd.csv", csv.String()))

	const key = "send:left-part-way"
	req := dispatch.Request{Key: key, Kind: "send", Name: "paper prescriptions", Subject: "Paper prescriptions",
		Body:    "Use paper prescriptions until further notice.",
		Targets: []dispatch.Target{{Audience: "clinicians", Channels: []string{"ministers-email"}, Event: templates.EventMessage}}}
	spec, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openApp(context.Background(), h.config, h.env(&syncBuffer{}, &syncBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	// The dead process had committed its first chunk (crowd-000…149, all
	// sent since) and recorded how far it got.
	err = a.st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: key, Kind: "send", Name: req.Name, CreatedAt: h.clock()}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for i := range 150 {
			if err := enq.Add(&store.NewDelivery{SubscriberID: fmt.Sprintf("crowd-%03d", i), Channel: "ministers-email", Kind: "email",
				Address: fmt.Sprintf("crowd%d@example.org", i), Status: store.StatusSent, Text: "sent before the crash"}); err != nil {
				return err
			}
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		return tx.SetPlanning(tr.ID, string(spec), "crowd-149", h.clock().Add(-time.Second))
	})
	a.Close()
	if err != nil {
		t.Fatal(err)
	}

	s := startServe(t, h)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := h.logRows("--trigger", key)
		status := countBy(rows, func(r logRow) string { return r.Status })
		perPerson := countBy(rows, func(r logRow) string { return r.Subscriber })
		if status["sent"] >= 300 && status["queued"] == 0 && status["sending"] == 0 {
			for who, n := range perPerson {
				if n != 1 {
					t.Errorf("%s has %d deliveries, want 1", who, n)
				}
			}
			t.Logf("statuses %v, %d people", status, len(perPerson))
			for _, r := range rows {
				if !strings.HasPrefix(r.Subscriber, "crowd-") {
					continue
				}
				// Those the dead process had planned are not sent again;
				// the rest are sent once by the server.
				if before := r.Subscriber <= "crowd-149"; before && r.Attempts != 0 || !before && r.Attempts != 1 {
					t.Errorf("%s: %d attempts (%s)", r.Subscriber, r.Attempts, r.Status)
				}
			}
			if perPerson["crowd-000"] != 1 || perPerson["crowd-299"] != 1 || len(perPerson) < 300 {
				t.Errorf("the imported clinicians were not all planned: %v", status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plan left part-way was not finished and sent within 20s: %v\n%s", status, s.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(s.stderr.String(), "finished plans a stopped process left part-way") {
		t.Errorf("crier serve did not log that it finished the plan:\n%s", s.stderr.String())
	}
}
