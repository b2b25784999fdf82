package subscribers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// QuietHours is a daily window, in the subscriber's local wall-clock time,
// during which non-critical messages are held back. Start is inside the
// window and End is not; a Start later than End crosses midnight.
type QuietHours struct {
	Start string `yaml:"start" json:"start"` // "22:00"
	End   string `yaml:"end" json:"end"`     // "07:00"
}

// Contains reports whether t falls inside the window as read on a wall clock
// in loc (nil means t's own location). It compares wall-clock minutes rather
// than elapsed durations, so "22:00–07:00" still ends at 07:00 local on the
// nights the clocks change. A window that does not parse, or whose start and
// end are equal, contains nothing: a bad value must not silence anyone.
func (q QuietHours) Contains(t time.Time, loc *time.Location) bool {
	start, err1 := parseClock(q.Start)
	end, err2 := parseClock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return false
	}
	if loc != nil {
		t = t.In(loc)
	}
	m := t.Hour()*60 + t.Minute()
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

// String shows the window as "22:00-07:00", the form the CSV import reads.
func (q QuietHours) String() string { return q.Start + "-" + q.End }

// normalize canonicalises Start and End to zero-padded "HH:MM" and records
// every problem under quiet_hours.*.
func (q *QuietHours) normalize(errs *fields.List) {
	fix := "use a 24-hour time like 22:00"
	start, errS := parseClock(q.Start)
	end, errE := parseClock(q.End)
	if errS != nil {
		errs.Add("quiet_hours.start", q.Start, "%v: %s", errS, fix)
	}
	if errE != nil {
		errs.Add("quiet_hours.end", q.End, "%v: %s", errE, fix)
	}
	if errS != nil || errE != nil {
		return
	}
	if start == end {
		errs.Add("quiet_hours", q.String(), "start and end are the same time: give different times, or remove quiet_hours")
		return
	}
	q.Start, q.End = formatClock(start), formatClock(end)
}

// parseClock reads "H:MM" or "HH:MM" (00:00–23:59) as minutes after midnight.
func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing")
	}
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return 0, fmt.Errorf("not a time of day")
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if hh > 23 || mm > 59 {
		return 0, fmt.Errorf("not a time of day")
	}
	return hh*60 + mm, nil
}

func formatClock(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
