package subscribers

import (
	"reflect"
	"testing"
)

func TestSelector_Match_Fields(t *testing.T) {
	welshClinician := &Subscriber{ID: "dr-jones", Roles: []string{"clinician"}, Nations: []string{"wales"}, Tags: []string{"gp"}}
	minister := &Subscriber{ID: "min-1", Roles: []string{"minister"}, Nations: []string{"england", "scotland"}}
	noNations := &Subscriber{ID: "ops", Roles: []string{"responder"}}
	unnormalised := &Subscriber{ID: "Raw", Roles: []string{" Clinician "}, Nations: []string{"Northern Ireland"}, Tags: []string{"GP"}}

	tests := []struct {
		name     string
		sel      Selector
		sub      *Subscriber
		incident []string
		want     bool
	}{
		{"empty selector matches everyone", Selector{}, noNations, nil, true},
		{"role matches", Selector{Roles: []string{"clinician"}}, welshClinician, nil, true},
		{"role does not match", Selector{Roles: []string{"minister"}}, welshClinician, nil, false},
		{"any value within a field", Selector{Roles: []string{"minister", "clinician"}}, welshClinician, nil, true},
		{"fields combine with and", Selector{Roles: []string{"clinician"}, Nations: []string{"scotland"}}, welshClinician, nil, false},
		{"all fields agree", Selector{IDs: []string{"dr-jones"}, Roles: []string{"clinician"}, Nations: []string{"wales"}, Tags: []string{"gp"}}, welshClinician, nil, true},
		{"id picks one", Selector{IDs: []string{"min-1"}}, minister, nil, true},
		{"id excludes others", Selector{IDs: []string{"min-1"}}, welshClinician, nil, false},
		{"id case-insensitive", Selector{IDs: []string{"MIN-1"}}, minister, nil, true},
		{"role case and spaces", Selector{Roles: []string{" CLINICIAN"}}, welshClinician, nil, true},
		{"tag case", Selector{Tags: []string{"GP"}}, welshClinician, nil, true},
		{"nation alias in selector", Selector{Nations: []string{"Cymru"}}, welshClinician, nil, true},
		{"nation alias on subscriber", Selector{Nations: []string{"ni"}}, unnormalised, nil, true},
		{"unnormalised subscriber role and tag", Selector{Roles: []string{"clinician"}, Tags: []string{"gp"}, IDs: []string{"raw"}}, unnormalised, nil, true},
		{"subscriber without nations fails a nation field", Selector{Nations: []string{"wales"}}, noNations, nil, false},
		{"field of only empty values is unconstrained", Selector{Roles: []string{"", " "}}, noNations, nil, true},
		{"nil subscriber", Selector{}, nil, nil, false},

		{"incident nations ignored when off", Selector{Roles: []string{"clinician"}}, welshClinician, []string{"scotland"}, true},
		{"incident in my nation", Selector{Roles: []string{"clinician"}, IncidentNations: true}, welshClinician, []string{"wales", "england"}, true},
		{"incident elsewhere", Selector{Roles: []string{"clinician"}, IncidentNations: true}, welshClinician, []string{"scotland"}, false},
		{"one of several nations overlaps", Selector{IncidentNations: true}, minister, []string{"scotland"}, true},
		{"incident nation in an alias form", Selector{IncidentNations: true}, unnormalised, []string{"NI"}, true},
		{"subscriber without nations never matches", Selector{IncidentNations: true}, noNations, []string{"england", "scotland", "wales", "northern-ireland"}, false},
		{"incident without nations matches nobody", Selector{IncidentNations: true}, minister, nil, false},
		{"uk is not shorthand for every nation", Selector{IncidentNations: true}, minister, []string{"uk"}, false},
		{"incident nations and selector nations both apply", Selector{Nations: []string{"england"}, IncidentNations: true}, minister, []string{"scotland"}, true},
		{"selector nation fails though incident overlaps", Selector{Nations: []string{"wales"}, IncidentNations: true}, minister, []string{"scotland"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Match(tt.sub, tt.incident); got != tt.want {
				t.Fatalf("Match(%+v, %q) = %v, want %v", tt.sub, tt.incident, got, tt.want)
			}
		})
	}
}

func TestSelector_Normalize_Canonicalises(t *testing.T) {
	sel := Selector{
		IDs:     []string{" Alice ", "alice", ""},
		Roles:   []string{"Minister", "minister "},
		Nations: []string{"NI", "northern ireland", "Wales"},
		Tags:    []string{"Gold"},
	}
	if errs := sel.Normalize(); len(errs) != 0 {
		t.Fatalf("Normalize() errors: %v", errs.Err())
	}
	want := Selector{IDs: []string{"alice"}, Roles: []string{"minister"}, Nations: []string{"northern-ireland", "wales"}, Tags: []string{"gold"}}
	if !reflect.DeepEqual(sel, want) {
		t.Fatalf("Normalize()\n got %+v\nwant %+v", sel, want)
	}
}

func TestSelector_Normalize_Rejects(t *testing.T) {
	tests := []struct {
		name  string
		sel   Selector
		path  string
		value string
	}{
		{"unknown nation", Selector{Nations: []string{"wales", "Narnia"}}, "nations", "Narnia"},
		{"uk", Selector{Nations: []string{"uk"}}, "nations", "uk"},
		{"bad id", Selector{IDs: []string{"not an id"}}, "ids", "not an id"},
		{"role with semicolon", Selector{Roles: []string{"a;b"}}, "roles", "a;b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := tt.sel
			errs := sel.Normalize()
			if len(errs) != 1 || errs[0].Path != tt.path || errs[0].Value != tt.value {
				t.Fatalf("Normalize() = %v, want one error at %q with value %q", errs.Err(), tt.path, tt.value)
			}
			// A rejected value stays, so a caller that ignores the error
			// still gets a selector that cannot widen to everyone.
			if sel.Match(&Subscriber{ID: "x", Nations: []string{"scotland"}}, nil) {
				t.Fatal("a selector with a rejected value matched an unrelated subscriber")
			}
		})
	}
}

func BenchmarkSelector_Match(b *testing.B) {
	sel := Selector{Roles: []string{"clinician", "gp"}, Nations: []string{"wales", "scotland"}, IncidentNations: true}
	s := &Subscriber{ID: "dr-jones", Roles: []string{"nurse", "clinician"}, Nations: []string{"wales"}}
	incident := []string{"england", "wales"}
	for b.Loop() {
		if !sel.Match(s, incident) {
			b.Fatal("no match")
		}
	}
}
