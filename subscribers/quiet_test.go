package subscribers

import (
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the machine's zoneinfo
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestQuietHours_Contains_Windows(t *testing.T) {
	london := mustZone(t, "Europe/London")
	newYork := mustZone(t, "America/New_York")
	night := QuietHours{Start: "22:00", End: "07:00"}
	tests := []struct {
		name string
		q    QuietHours
		at   time.Time
		loc  *time.Location
		want bool
	}{
		// Winter: London is UTC+0.
		{"winter evening before start", night, utc("2026-01-15T21:59:00Z"), london, false},
		{"winter start is inside", night, utc("2026-01-15T22:00:00Z"), london, true},
		{"winter just before midnight", night, utc("2026-01-15T23:59:00Z"), london, true},
		{"winter midnight", night, utc("2026-01-16T00:00:00Z"), london, true},
		{"winter early morning", night, utc("2026-01-16T06:59:00Z"), london, true},
		{"winter end is outside", night, utc("2026-01-16T07:00:00Z"), london, false},
		{"winter midday", night, utc("2026-01-16T12:00:00Z"), london, false},
		// Summer: London is UTC+1, so 21:30Z is 22:30 local.
		{"summer 21:30Z is 22:30 BST", night, utc("2026-07-01T21:30:00Z"), london, true},
		{"summer 06:30Z is 07:30 BST", night, utc("2026-07-02T06:30:00Z"), london, false},
		// Spring forward, 2026-03-29: 01:00 GMT becomes 02:00 BST mid-window.
		{"spring night 22:30 GMT", night, utc("2026-03-28T22:30:00Z"), london, true},
		{"spring 00:59Z is 00:59 GMT", night, utc("2026-03-29T00:59:00Z"), london, true},
		{"spring 01:00Z is 02:00 BST", night, utc("2026-03-29T01:00:00Z"), london, true},
		{"spring 05:59Z is 06:59 BST", night, utc("2026-03-29T05:59:00Z"), london, true},
		{"spring 06:00Z is 07:00 BST, window over", night, utc("2026-03-29T06:00:00Z"), london, false},
		{"spring 06:30Z is 07:30 BST", night, utc("2026-03-29T06:30:00Z"), london, false},
		// Fall back, 2026-10-25: 02:00 BST becomes 01:00 GMT mid-window.
		{"autumn 21:30Z is 22:30 BST", night, utc("2026-10-24T21:30:00Z"), london, true},
		{"autumn 21:00Z is 22:00 BST", night, utc("2026-10-24T21:00:00Z"), london, true},
		{"autumn 20:59Z is 21:59 BST", night, utc("2026-10-24T20:59:00Z"), london, false},
		{"autumn first 01:30 (BST)", night, utc("2026-10-25T00:30:00Z"), london, true},
		{"autumn second 01:30 (GMT)", night, utc("2026-10-25T01:30:00Z"), london, true},
		{"autumn 06:30Z is 06:30 GMT", night, utc("2026-10-25T06:30:00Z"), london, true},
		{"autumn 07:00Z is 07:00 GMT, window over", night, utc("2026-10-25T07:00:00Z"), london, false},
		// A window inside the hour the clocks skip or repeat.
		{"spring skipped hour: 02:00 BST is inside 01:30-02:30", QuietHours{"01:30", "02:30"}, utc("2026-03-29T01:00:00Z"), london, true},
		{"spring 02:30 BST is outside 01:30-02:30", QuietHours{"01:30", "02:30"}, utc("2026-03-29T01:30:00Z"), london, false},
		{"autumn repeated hour, first pass", QuietHours{"01:00", "02:00"}, utc("2026-10-25T00:15:00Z"), london, true},
		{"autumn repeated hour, second pass", QuietHours{"01:00", "02:00"}, utc("2026-10-25T01:15:00Z"), london, true},
		// Same-day window and other zones.
		{"daytime window inside", QuietHours{"09:00", "17:30"}, utc("2026-01-15T17:29:00Z"), london, true},
		{"daytime window end", QuietHours{"09:00", "17:30"}, utc("2026-01-15T17:30:00Z"), london, false},
		{"new york 03:00Z is 22:00 EST", night, utc("2026-01-16T03:00:00Z"), newYork, true},
		{"new york 12:00Z is 07:00 EST", night, utc("2026-01-16T12:00:00Z"), newYork, false},
		{"nil location uses t's own", night, time.Date(2026, 1, 15, 23, 0, 0, 0, newYork), nil, true},
		// Nothing is silenced by a broken window.
		{"equal start and end", QuietHours{"22:00", "22:00"}, utc("2026-01-15T22:00:00Z"), london, false},
		{"unparseable start", QuietHours{"late", "07:00"}, utc("2026-01-16T03:00:00Z"), london, false},
		{"empty window", QuietHours{}, utc("2026-01-16T03:00:00Z"), london, false},
		{"unpadded times still work", QuietHours{"9:00", "17:00"}, utc("2026-01-15T09:00:00Z"), london, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.Contains(tt.at, tt.loc); got != tt.want {
				t.Fatalf("%v.Contains(%s in %v) = %v, want %v", tt.q, tt.at.Format(time.RFC3339), tt.loc, got, tt.want)
			}
		})
	}
}

func TestQuietHours_Normalize_Clock(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"00:00", "00:00", true},
		{"7:05", "07:05", true},
		{" 23:59 ", "23:59", true},
		{"24:00", "", false},
		{"12:60", "", false},
		{"1200", "", false},
		{"12:5", "", false},
		{"-1:00", "", false},
		{"+1:00", "", false},
		{"١٢:٠٠", "", false}, // non-ASCII digits
	}
	for _, tt := range tests {
		q := QuietHours{Start: tt.in, End: "12:34"}
		s := Subscriber{ID: "a", Name: "A", QuietHours: &q}
		errs := s.Normalize()
		if tt.ok != (len(errs) == 0) {
			t.Errorf("start %q: errors %v, want ok=%v", tt.in, errs.Err(), tt.ok)
			continue
		}
		if tt.ok && q.Start != tt.want {
			t.Errorf("start %q normalised to %q, want %q", tt.in, q.Start, tt.want)
		}
	}
}
