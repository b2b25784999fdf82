package incidents

import (
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

var t0 = time.Date(2026, 11, 25, 8, 12, 0, 0, time.UTC)

func TestOpen_BadInput(t *testing.T) {
	tests := []struct {
		name string
		c    Change
		want []string // paths
	}{
		{"no title", Change{Severity: "critical"}, []string{"title"}},
		{"bad severity", Change{Title: "x", Severity: "urgent"}, []string{"severity"}},
		{"no severity", Change{Title: "x"}, []string{"severity"}},
		{"starts resolved", Change{Title: "x", Severity: "minor", Status: "resolved"}, []string{"status"}},
		{"bad impact nation", Change{Title: "x", Severity: "minor", Impacts: []Impact{{Service: "Referrals", Nation: "mars", Status: "outage"}}}, []string{"impacts[0]"}},
		{"bad impact status", Change{Title: "x", Severity: "minor", Impacts: []Impact{{Service: "Referrals", Nation: "wales", Status: "broken"}}}, []string{"impacts[0].status"}},
		{"everything wrong", Change{Severity: "urgent", Status: "asleep"}, []string{"title", "severity", "status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.c, t0)
			l, ok := fields.AsList(err)
			if !ok {
				t.Fatalf("Open = %v, want a field list", err)
			}
			var got []string
			for _, e := range l {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("paths = %v, want %v (%v)", got, tt.want, err)
			}
		})
	}
}

func TestIncident_Apply_UpdateAndResolve(t *testing.T) {
	inc, err := Open(Change{Title: "Helpline down", Severity: "major", Impacts: []Impact{
		{Service: "Referrals", Nation: "Wales", Status: "outage", Workaround: "phone"},
		{Service: "Booking", Nation: "ni", Status: "degraded"},
	}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inc.Nations(), ","); got != "northern-ireland,wales" {
		t.Fatalf("Nations = %s", got)
	}
	u, err := inc.Apply("update", Change{Severity: "critical", Impacts: []Impact{{Service: "referrals", Nation: "wales", Status: "restored"}}}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if u.Seq != 2 || inc.Severity != Critical || len(inc.Impacts) != 2 || inc.Impacts[0].Status != Restored {
		t.Fatalf("after update: seq %d, %+v", u.Seq, inc)
	}
	if got := strings.Join(inc.Nations(), ","); got != "northern-ireland" {
		t.Fatalf("Nations after restore = %s", got)
	}
	if _, err := inc.Apply("update", Change{}, t0); err == nil {
		t.Fatal("an empty update was accepted")
	}
	r, err := inc.Apply("resolve", Change{}, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if inc.Active() || r.Seq != 3 || inc.Impacts[1].Status != Restored || inc.ResolvedAt.IsZero() {
		t.Fatalf("after resolve: %+v", inc)
	}
	if _, err := inc.Apply("update", Change{Text: "more"}, t0); err == nil {
		t.Fatal("update of a resolved incident accepted")
	}
}

func TestParseImpact_Forms(t *testing.T) {
	im, err := ParseImpact("Emergency prescriptions@England=outage:Use paper FP10: no exceptions")
	if err != nil {
		t.Fatal(err)
	}
	if im.Service != "Emergency prescriptions" || im.Nation != "england" || im.Status != Outage || im.Workaround != "Use paper FP10: no exceptions" {
		t.Fatalf("got %+v", im)
	}
	for _, bad := range []string{"nonsense", "Referrals=outage", "Referrals@wales=gone", "@wales=outage", "Referrals@atlantis=outage"} {
		if _, err := ParseImpact(bad); err == nil {
			t.Errorf("ParseImpact(%q) accepted", bad)
		}
	}
}
