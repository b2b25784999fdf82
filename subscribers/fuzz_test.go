package subscribers

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadCSV checks that no input panics ReadCSV, that every problem has a
// line and a message, and that what it accepts is already canonical: a
// second Normalize finds nothing to change or reject.
func FuzzReadCSV(f *testing.F) {
	for _, name := range []string{"testdata/good.csv", "testdata/bad_rows.csv"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, seed := range []string{
		"",
		"\xEF\xBB\xBF",
		"\xEF\xBB\xBFid,name\na,A\n",
		"id,name\n",
		"id\n",
		"id,name,pager\n",
		"id,id,name\n",
		"id,name,phone\na,A\nb,B,,\n",
		"id,name\n\"a,\"b\n",
		"id,name\na,\"unterminated\n",
		"id,name,quiet_hours\na,A,22:00-07:00\nb,B,-\nc,C,22:00-\nd,D,99:99-00:00\ne,E,7:00–9:00\n",
		"id,name,phone,email,slack\na,A,+447400123456,a@example.org,C0123ABCDE\na,A2,07400 123457,,\n",
		"id,name,nations,roles,tags,opted_out\na,A,ni;;WALES, ; ;x,sms;FAX\n",
		"id,name,locale,timezone\na,A,cy_GB,Europe/London\nb,B,xx,../../etc/passwd\n",
		"id,name\r\na,A\r\n\r\n,\r\n",
		"id,name,email\na,A,\"x\"\"y\"@example.org\n",
		"id,name,phone\na,A,+" + strings.Repeat("9", 300) + "\n",
		"id,name\n" + strings.Repeat("a,b\n", 50),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		res, err := ReadCSV(strings.NewReader(in))
		if err != nil {
			if len(res.Subscribers) != 0 || len(res.Errors) != 0 {
				t.Fatalf("error %v came with results %+v", err, res)
			}
			return
		}
		for _, e := range res.Errors {
			if e.Line < 2 || e.Msg == "" {
				t.Fatalf("row error without a row line or message: %+v", e)
			}
		}
		seen := map[string]bool{}
		for _, s := range res.Subscribers {
			if seen[s.ID] {
				t.Fatalf("id %q imported twice", s.ID)
			}
			seen[s.ID] = true
			again := s
			again.QuietHours = cloneQuiet(s.QuietHours)
			again.Roles = append([]string(nil), s.Roles...)
			if errs := again.Normalize(); len(errs) != 0 {
				t.Fatalf("accepted subscriber %+v fails a second Normalize: %v", s, errs.Err())
			}
			if !reflect.DeepEqual(normalizeNil(again), normalizeNil(s)) {
				t.Fatalf("second Normalize changed\n%+v\nto\n%+v", s, again)
			}
		}
	})
}

// normalizeNil treats empty and nil slices alike for comparison.
func normalizeNil(s Subscriber) Subscriber {
	for _, p := range []*[]string{&s.Roles, &s.Nations, &s.Tags, &s.OptedOut} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return s
}

// FuzzSubscriber_Normalize checks single field values more directly than
// the CSV target can: no panic, every error on a known key, and an accepted
// subscriber is a fixed point of Normalize.
func FuzzSubscriber_Normalize(f *testing.F) {
	f.Add("alice", "Alice", "07400 123457", "A <a@example.org>", "c0123abcde", "cy-GB", "Europe/London", "ni;wales", "22:00", "07:00")
	f.Add("Bad Id", "", "020 7946 0000", "nope", "#general", "fr", "Mars/Olympus", "uk", "25:00", "x")
	f.Add("b", "B", "+1 415 555 2671", `"q"@example.org`, "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, name, phone, email, slack, locale, tz, nations, qStart, qEnd string) {
		s := Subscriber{ID: id, Name: name, Phone: phone, Email: email, Slack: slack, Locale: locale,
			TimeZone: tz, Nations: strings.Split(nations, ";"), Roles: []string{name}, Tags: []string{id}}
		if qStart != "" || qEnd != "" {
			s.QuietHours = &QuietHours{Start: qStart, End: qEnd}
		}
		errs := s.Normalize()
		known := map[string]bool{"id": true, "name": true, "roles": true, "nations": true, "tags": true, "locale": true,
			"timezone": true, "phone": true, "email": true, "slack": true, "quiet_hours": true,
			"quiet_hours.start": true, "quiet_hours.end": true, "opted_out": true}
		for _, e := range errs {
			if !known[e.Path] || e.Msg == "" {
				t.Fatalf("error on unknown key or without message: %+v", e)
			}
		}
		if len(errs) != 0 {
			return
		}
		again := s
		again.QuietHours = cloneQuiet(s.QuietHours)
		if errs := again.Normalize(); len(errs) != 0 {
			t.Fatalf("accepted %+v fails a second Normalize: %v", s, errs.Err())
		}
		if !reflect.DeepEqual(normalizeNil(again), normalizeNil(s)) {
			t.Fatalf("second Normalize changed\n%+v\nto\n%+v", s, again)
		}
	})
}
