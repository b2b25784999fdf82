package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// TestCLI_Serve_BroadcastAck: a broadcast made through the API can ask for
// acknowledgement like an alert rule: its policy is stored with the
// trigger, and a bad request names the ack field.
func TestCLI_Serve_BroadcastAck(t *testing.T) {
	yaml := strings.Replace(exampleYAML(t), "  tokens: []\n", "  tokens:\n    - name: test-desk\n      role: operator\n      token: ${CRIER_TEST_TOKEN}\n", 1)
	yaml = strings.Replace(yaml, "\nwebhooks:\n", "\nwebhooks:\n  ack_secret: ${CRIER_ACK_SECRET}\n", 1)
	h := newHarness(t, yaml)
	h.setenv("CRIER_TEST_TOKEN", serveToken)
	h.setenv("CRIER_ACK_SECRET", "0123456789abcdef0123456789abcdef0123456789")
	s := startServe(t, h)

	bad := `{"audience":"clinicians","channels":["clinician-sms"],"body":"Paper prescriptions now","ack":{"within":"30s","escalate":["fax"]}}`
	code, _, body := s.call(t, "POST", "/api/v1/broadcasts", serveToken, bad, nil)
	if code != 422 || !strings.Contains(string(body), "ack.within") {
		t.Fatalf("bad ack: %d %s, want 422 naming ack.within", code, body)
	}
	good := `{"audience":"clinicians","channels":["clinician-sms"],"body":"Paper prescriptions now","key":"ack-1",` +
		`"ack":{"within":"15m","quorum":2,"escalate":["ministers-email"],"deputy":"ministers"}}`
	if code, _, body := s.call(t, "POST", "/api/v1/broadcasts", serveToken, good, nil); code != 201 {
		t.Fatalf("broadcast with ack: %d %s", code, body)
	}
	st, err := store.Open(context.Background(), filepath.Join(h.dir, "crier.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policies, err := st.ActiveAckPolicies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 || policies[0].Within != 15*time.Minute || policies[0].Quorum != 2 || policies[0].Deputy != "ministers" ||
		strings.Join(policies[0].Ladder, ",") != "ministers-email" {
		t.Fatalf("ack policies %+v, want one: 15m, quorum 2, ladder ministers-email, deputy ministers", policies)
	}
}
