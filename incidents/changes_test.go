package incidents

import (
	"reflect"
	"testing"
	"time"
)

// TestIncident_Changes: each entry's changed cells with the status they
// had before it, through an update that restores one nation and a
// resolution that restores the rest.
func TestIncident_Changes(t *testing.T) {
	inc, err := Open(Change{Title: "Referrals down", Severity: "major", Impacts: []Impact{
		{Service: "Referrals", Nation: "wales", Status: Outage, Workaround: "Phone the duty clinician."},
		{Service: "Prescriptions", Nation: "england", Status: Degraded},
	}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inc.Apply("update", Change{Impacts: []Impact{{Service: "referrals", Nation: "Wales", Status: Restored}}}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := inc.Apply("update", Change{Text: "Still working on it."}, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := inc.Apply("resolve", Change{}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		seq  int
		want []ImpactChange
	}{
		{1, []ImpactChange{
			{Service: "Referrals", Nation: "wales", To: Outage, Workaround: "Phone the duty clinician."},
			{Service: "Prescriptions", Nation: "england", To: Degraded},
		}},
		{2, []ImpactChange{{Service: "referrals", Nation: "wales", From: Outage, To: Restored}}},
		{3, nil},
		{4, []ImpactChange{{Service: "Prescriptions", Nation: "england", From: Degraded, To: Restored}}},
		{5, nil},
	}
	for _, tt := range tests {
		got := inc.Changes(tt.seq)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Changes(%d) = %+v, want %+v", tt.seq, got, tt.want)
		}
		for _, c := range got {
			if want := tt.seq == 2 || tt.seq == 4; c.Restored() != want {
				t.Errorf("Changes(%d): %+v Restored() = %v", tt.seq, c, c.Restored())
			}
		}
	}
}
