package subscribers

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels"
)

func TestSubscriber_Normalize_Canonicalises(t *testing.T) {
	tests := []struct {
		name string
		in   Subscriber
		want Subscriber
	}{
		{
			name: "minimal gets defaults",
			in:   Subscriber{ID: "alice", Name: "Alice"},
			want: Subscriber{ID: "alice", Name: "Alice", Locale: "en", TimeZone: "Europe/London"},
		},
		{
			name: "every field in a loose form",
			in: Subscriber{
				ID: "  Alice.Smith_2 ", Name: "  Alice Smith ",
				Roles:      []string{"Minister", " official ", "minister", ""},
				Nations:    []string{"NI", "Northern Ireland", "wales", " Scotland", "northern_ireland"},
				Tags:       []string{"Covid", "covid", " Gold-Command "},
				Locale:     "cy-GB",
				TimeZone:   " Europe/London ",
				Phone:      "07400 123457",
				Email:      "Alice Smith <Alice.Smith@Example.ORG>",
				Slack:      " u0123abcde ",
				QuietHours: &QuietHours{Start: "7:00", End: " 22:30"},
				OptedOut:   []string{"SMS", " slack", "sms"},
			},
			want: Subscriber{
				ID: "alice.smith_2", Name: "Alice Smith",
				Roles:      []string{"minister", "official"},
				Nations:    []string{"northern-ireland", "wales", "scotland"},
				Tags:       []string{"covid", "gold-command"},
				Locale:     "cy",
				TimeZone:   "Europe/London",
				Phone:      "+447400123457",
				Email:      "alice.smith@example.org",
				Slack:      "U0123ABCDE",
				QuietHours: &QuietHours{Start: "07:00", End: "22:30"},
				OptedOut:   []string{"sms", "slack"},
			},
		},
		{
			name: "international mobile forms and other zones",
			in:   Subscriber{ID: "b", Name: "B", Phone: "+44 (0)7400 123456", Locale: "EN_gb", TimeZone: "America/New_York", Email: "<b@nhs.example.net>"},
			want: Subscriber{ID: "b", Name: "B", Phone: "+447400123456", Locale: "en", TimeZone: "America/New_York", Email: "b@nhs.example.net"},
		},
		{
			name: "0044 prefix, UTC zone",
			in:   Subscriber{ID: "c", Name: "C", Phone: "0044 7400 123456", TimeZone: "UTC"},
			want: Subscriber{ID: "c", Name: "C", Phone: "+447400123456", Locale: "en", TimeZone: "UTC"},
		},
		{
			name: "north american fixed-or-mobile is accepted",
			in:   Subscriber{ID: "d", Name: "D", Phone: "+1 415 555 2671", Locale: "cy"},
			want: Subscriber{ID: "d", Name: "D", Phone: "+14155552671", Locale: "cy", TimeZone: "Europe/London"},
		},
		{
			name: "irish mobile, welsh nation name, slack channel",
			in:   Subscriber{ID: "e", Name: "E", Phone: "+353 85 123 4567", Nations: []string{"Cymru"}, Slack: "C0123ABCDE"},
			want: Subscriber{ID: "e", Name: "E", Phone: "+353851234567", Nations: []string{"wales"}, Slack: "C0123ABCDE", Locale: "en", TimeZone: "Europe/London"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			if errs := got.Normalize(); len(errs) != 0 {
				t.Fatalf("Normalize() errors: %v", errs.Err())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Normalize()\n got %+v\nwant %+v", got, tt.want)
			}
			again := got
			again.QuietHours = cloneQuiet(got.QuietHours)
			if errs := again.Normalize(); len(errs) != 0 || !reflect.DeepEqual(again, got) {
				t.Fatalf("second Normalize() changed %+v to %+v (errors %v)", got, again, errs.Err())
			}
		})
	}
}

func cloneQuiet(q *QuietHours) *QuietHours {
	if q == nil {
		return nil
	}
	c := *q
	return &c
}

func TestSubscriber_Normalize_Rejects(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Subscriber)
		path    string
		value   string
		msgPart string
	}{
		{"id missing", func(s *Subscriber) { s.ID = " " }, "id", "", "missing"},
		{"id with space", func(s *Subscriber) { s.ID = "bad id" }, "id", "bad id", "no spaces"},
		{"id leading dot", func(s *Subscriber) { s.ID = ".alice" }, "id", ".alice", "starting with a letter or digit"},
		{"id too long", func(s *Subscriber) { s.ID = strings.Repeat("a", 65) }, "id", strings.Repeat("a", 65), "1 to 64"},
		{"name missing", func(s *Subscriber) { s.Name = "" }, "name", "", "give the person's name"},
		{"name with line break", func(s *Subscriber) { s.Name = "Al\nice" }, "name", "Al\nice", "control character"},
		{"role with semicolon", func(s *Subscriber) { s.Roles = []string{"a;b"} }, "roles", "a;b", "separate list entry"},
		{"tag with tab", func(s *Subscriber) { s.Tags = []string{"a\tb"} }, "tags", "a\tb", "control character"},
		{"unknown nation", func(s *Subscriber) { s.Nations = []string{"wales", "Atlantis"} }, "nations", "Atlantis", "use england, northern-ireland, scotland or wales"},
		{"uk is not a nation", func(s *Subscriber) { s.Nations = []string{"UK"} }, "nations", "UK", "unknown nation"},
		{"unsupported locale", func(s *Subscriber) { s.Locale = "fr" }, "locale", "fr", "use en or cy"},
		{"malformed locale", func(s *Subscriber) { s.Locale = "en--GB" }, "locale", "en--GB", "use en or cy"},
		{"unknown zone", func(s *Subscriber) { s.TimeZone = "Mars/Olympus" }, "timezone", "Mars/Olympus", "IANA name like Europe/London"},
		{"zone in wrong case", func(s *Subscriber) { s.TimeZone = "europe/london" }, "timezone", "europe/london", "case-sensitive"},
		{"server local zone", func(s *Subscriber) { s.TimeZone = "Local" }, "timezone", "Local", "IANA name"},
		{"phone too short", func(s *Subscriber) { s.Phone = "0123" }, "phone", "0123", "not a valid phone number: use an international form like +447400123456"},
		{"phone letters", func(s *Subscriber) { s.Phone = "call me" }, "phone", "call me", "not a valid phone number"},
		{"ofcom drama number", func(s *Subscriber) { s.Phone = "07700 900123" }, "phone", "07700 900123", "not a valid phone number"},
		{"landline", func(s *Subscriber) { s.Phone = "020 7946 0000" }, "phone", "020 7946 0000", "is a landline, which cannot receive SMS: give a mobile number like +447400123456"},
		{"freephone", func(s *Subscriber) { s.Phone = "0800 123 4567" }, "phone", "0800 123 4567", "freephone number, which cannot receive SMS"},
		{"personal number", func(s *Subscriber) { s.Phone = "07000 123456" }, "phone", "07000 123456", "personal (call-forwarding) number"},
		{"extension", func(s *Subscriber) { s.Phone = "07400 123456 ext. 12" }, "phone", "07400 123456 ext. 12", "has an extension"},
		{"email without at", func(s *Subscriber) { s.Email = "alice.example.org" }, "email", "alice.example.org", "use a bare address like name@example.org"},
		{"email dotless domain", func(s *Subscriber) { s.Email = "alice@localhost" }, "email", "alice@localhost", "not a valid email address"},
		{"email quoted space", func(s *Subscriber) { s.Email = `"a b"@example.org` }, "email", `"a b"@example.org`, "not a valid email address"},
		{"email two addresses", func(s *Subscriber) { s.Email = "a@example.org, b@example.org" }, "email", "a@example.org, b@example.org", "not a valid email address"},
		{"email header injection", func(s *Subscriber) { s.Email = "a@example.org\r\nBcc: x@example.org" }, "email", "a@example.org\r\nBcc: x@example.org", "not a valid email address"},
		{"slack channel name", func(s *Subscriber) { s.Slack = "#incident-room" }, "slack", "#incident-room", "not its name"},
		{"slack id too short", func(s *Subscriber) { s.Slack = "C123" }, "slack", "C123", "not a Slack channel or user ID"},
		{"quiet start out of range", func(s *Subscriber) { s.QuietHours = &QuietHours{Start: "25:00", End: "07:00"} }, "quiet_hours.start", "25:00", "use a 24-hour time like 22:00"},
		{"quiet end not a time", func(s *Subscriber) { s.QuietHours = &QuietHours{Start: "22:00", End: "7pm"} }, "quiet_hours.end", "7pm", "not a time of day"},
		{"quiet end missing", func(s *Subscriber) { s.QuietHours = &QuietHours{Start: "22:00"} }, "quiet_hours.end", "", "missing"},
		{"quiet empty window", func(s *Subscriber) { s.QuietHours = &QuietHours{Start: "22:00", End: "22:00"} }, "quiet_hours", "22:00-22:00", "start and end are the same"},
		{"unknown opt-out kind", func(s *Subscriber) { s.OptedOut = []string{"pigeon"} }, "opted_out", "pigeon", "use sms, email or slack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Subscriber{ID: "alice", Name: "Alice", Phone: "+447400123456"}
			tt.mod(&s)
			before := s
			errs := s.Normalize()
			if len(errs) != 1 {
				t.Fatalf("Normalize() gave %d errors, want 1: %v", len(errs), errs.Err())
			}
			e := errs[0]
			if e.Path != tt.path || e.Value != tt.value || !strings.Contains(e.Msg, tt.msgPart) {
				t.Fatalf("error = {Path:%q Value:%q Msg:%q}, want path %q value %q msg containing %q", e.Path, e.Value, e.Msg, tt.path, tt.value, tt.msgPart)
			}
			if !strings.HasPrefix(e.Error(), tt.path) {
				t.Errorf("Error() = %q does not start with the field name %q", e.Error(), tt.path)
			}
			if tt.value != "" && !strings.Contains(e.Error(), strconv.Quote(tt.value)) {
				t.Errorf("Error() = %q does not show the value %q", e.Error(), tt.value)
			}
			// The rejected field keeps what the caller gave, so it can be shown back.
			switch tt.path {
			case "phone":
				if s.Phone != before.Phone {
					t.Errorf("Phone changed to %q after an error", s.Phone)
				}
			case "nations":
				if !reflect.DeepEqual(s.Nations, before.Nations) {
					t.Errorf("Nations changed to %q after an error", s.Nations)
				}
			}
		})
	}
}

func TestSubscriber_Normalize_ReportsEveryProblem(t *testing.T) {
	s := Subscriber{
		ID: "Bad ID", Phone: "020 7946 0000", Email: "nope", Slack: "general",
		Nations: []string{"mordor"}, Locale: "de", TimeZone: "Nowhere/Town",
		QuietHours: &QuietHours{Start: "x", End: "y"}, OptedOut: []string{"fax"},
	}
	var got []string
	for _, e := range s.Normalize() {
		got = append(got, e.Path)
	}
	want := []string{"id", "name", "nations", "locale", "timezone", "phone", "email", "slack", "quiet_hours.start", "quiet_hours.end", "opted_out"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("error paths = %q, want %q", got, want)
	}
}

func TestSubscriber_Address_ByKind(t *testing.T) {
	s := Subscriber{Phone: "+447400123456", Email: "a@example.org", Slack: "U0123ABCDE"}
	tests := []struct {
		kind channels.Kind
		want string
	}{
		{channels.KindSMS, "+447400123456"},
		{channels.KindEmail, "a@example.org"},
		{channels.KindSlack, "U0123ABCDE"},
		{channels.Kind("fax"), ""},
	}
	for _, tt := range tests {
		if got := s.Address(tt.kind); got != tt.want {
			t.Errorf("Address(%q) = %q, want %q", tt.kind, got, tt.want)
		}
	}
	if got := (&Subscriber{}).Address(channels.KindSMS); got != "" {
		t.Errorf("Address on a subscriber without phone = %q, want empty", got)
	}
}

func TestSubscriber_HasOptedOut_Kinds(t *testing.T) {
	tests := []struct {
		name     string
		optedOut []string
		kind     channels.Kind
		want     bool
	}{
		{"none", nil, channels.KindSMS, false},
		{"listed", []string{"sms"}, channels.KindSMS, true},
		{"other kind", []string{"email"}, channels.KindSMS, false},
		{"not yet normalised", []string{" SMS "}, channels.KindSMS, true},
		{"several", []string{"email", "slack"}, channels.KindSlack, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Subscriber{OptedOut: tt.optedOut}
			if got := s.HasOptedOut(tt.kind); got != tt.want {
				t.Fatalf("HasOptedOut(%q) = %v, want %v", tt.kind, got, tt.want)
			}
		})
	}
}

func TestCanonicalNation_Aliases(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"england", "england", true},
		{"ENGLAND", "england", true},
		{" Scotland ", "scotland", true},
		{"Wales", "wales", true},
		{"cymru", "wales", true},
		{"ni", "northern-ireland", true},
		{"NI", "northern-ireland", true},
		{"Northern Ireland", "northern-ireland", true},
		{"northern  ireland", "northern-ireland", true},
		{"northern_ireland", "northern-ireland", true},
		{"Northern-Ireland", "northern-ireland", true},
		{"N. Ireland", "northern-ireland", true},
		{"uk", "", false},
		{"ireland", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := CanonicalNation(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalNation(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNations_IsACopy(t *testing.T) {
	n := Nations()
	if want := []string{"england", "northern-ireland", "scotland", "wales"}; !reflect.DeepEqual(n, want) {
		t.Fatalf("Nations() = %q, want %q", n, want)
	}
	n[0] = "changed"
	if Nations()[0] != "england" {
		t.Fatal("changing the slice Nations returned changed the package's list")
	}
	for _, c := range Nations() {
		if got, ok := CanonicalNation(c); !ok || got != c {
			t.Errorf("CanonicalNation(%q) = %q, %v; every canonical nation must map to itself", c, got, ok)
		}
	}
}
