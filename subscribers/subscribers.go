// Package subscribers holds the people crier notifies: their addresses on
// each channel kind, the roles, nations and tags audiences are chosen by,
// locale, time zone, quiet hours and opt-outs; the selectors that pick an
// audience; and the CSV import. It validates and canonicalises values but
// stores nothing: the store persists what Normalize produced.
package subscribers

import (
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/internal/fields"
)

// Defaults applied by Normalize to empty fields.
const (
	DefaultLocale   = "en"
	DefaultTimeZone = "Europe/London"
)

// locales are the message languages crier renders templates in.
var locales = [...]string{"en", "cy"}

// Subscriber is one person crier may notify.
type Subscriber struct {
	// ID is the stable key deliveries are logged under: 1–64 of [a-z0-9._-].
	ID string `yaml:"id" json:"id"`
	// Name is how messages address the person.
	Name string `yaml:"name" json:"name"`
	// Roles are free lower-case words selectors match (minister, clinician).
	Roles []string `yaml:"roles" json:"roles"`
	// Nations are canonical UK nations (see Nations) the person covers.
	Nations []string `yaml:"nations" json:"nations"`
	// Tags are free lower-case words selectors match.
	Tags []string `yaml:"tags" json:"tags"`
	// Locale is the message language, "en" (default) or "cy".
	Locale string `yaml:"locale" json:"locale"`
	// LocaleRecorded is when the person's language preference was recorded
	// (a date, 2026-03-01, or an RFC 3339 time): the Welsh Language
	// Standards ask that the answer be kept, with when it was given.
	LocaleRecorded string `yaml:"locale_recorded,omitempty" json:"locale_recorded,omitempty"`
	// LocaleSource is how the preference was recorded ("asked at
	// registration", "letter of 2 March 2026").
	LocaleSource string `yaml:"locale_source,omitempty" json:"locale_source,omitempty"`
	// TimeZone is an IANA zone name for quiet hours; default Europe/London.
	TimeZone string `yaml:"timezone" json:"timezone"`
	// Phone is an SMS-capable number in E.164 after Normalize.
	Phone string `yaml:"phone" json:"phone"`
	// Email is a bare lower-cased address after Normalize.
	Email string `yaml:"email" json:"email"`
	// Slack is a Slack channel or user ID such as C0123ABCDE.
	Slack string `yaml:"slack" json:"slack"`
	// QuietHours, when set, holds back non-critical messages overnight.
	QuietHours *QuietHours `yaml:"quiet_hours,omitempty" json:"quiet_hours,omitempty"`
	// OptedOut lists the channel kinds ("sms", "email", "slack") the person refused.
	OptedOut []string `yaml:"opted_out,omitempty" json:"opted_out,omitempty"`
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	slackPattern = regexp.MustCompile(`^[CGDU][A-Z0-9]{8,}$`)
)

// The example values in fixes, so every message suggests the same thing.
const (
	phoneFix = "use an international form like +447400123456"
	smsFix   = "give a mobile number like +447400123456"
)

// Normalize validates s and rewrites it in canonical form in place: ids,
// roles, tags and nations lower-cased and de-duplicated, the phone number in
// E.164, the email as a bare lower-cased address, defaults for locale and
// time zone. It returns every problem at once, each under its YAML key with
// the offending value and the fix. A field with a problem keeps its input
// value so the caller can show it.
func (s *Subscriber) Normalize() fields.List {
	var errs fields.List

	if id, ok := normalizeID(&errs, "id", s.ID); ok {
		s.ID = id
	}

	name := strings.TrimSpace(s.Name)
	switch {
	case name == "":
		errs.Add("name", "", "missing: give the person's name")
	case hasControl(name):
		errs.Add("name", s.Name, "contains a control character (a line break or tab): give the name on one line")
	default:
		s.Name = name
	}

	s.Roles = normalizeWords(&errs, "roles", s.Roles)
	s.Tags = normalizeWords(&errs, "tags", s.Tags)
	s.Nations = normalizeNations(&errs, "nations", s.Nations)

	if loc, ok := canonicalLocale(s.Locale); ok {
		s.Locale = loc
	} else {
		errs.Add("locale", s.Locale, "unsupported locale: use en or cy (en-GB and cy-GB also work)")
	}
	if r := strings.TrimSpace(s.LocaleRecorded); r != "" {
		if _, err := time.Parse("2006-01-02", r); err != nil {
			if _, err := time.Parse(time.RFC3339, r); err != nil {
				errs.Add("locale_recorded", s.LocaleRecorded, "not a date: write it as 2026-03-01 or 2026-03-01T09:30:00Z")
			}
		}
		s.LocaleRecorded = r
	}
	s.LocaleSource = strings.TrimSpace(s.LocaleSource)
	if hasControl(s.LocaleSource) {
		errs.Add("locale_source", s.LocaleSource, "contains a control character: write it on one line")
	}

	tz := strings.TrimSpace(s.TimeZone)
	if tz == "" {
		tz = DefaultTimeZone
	}
	if err := checkTimeZone(tz); err != "" {
		errs.Add("timezone", s.TimeZone, "%s", err)
	} else {
		s.TimeZone = tz
	}

	if v := strings.TrimSpace(s.Phone); v == "" {
		s.Phone = ""
	} else if e164, msg := normalizePhone(v); msg != "" {
		errs.Add("phone", s.Phone, "%s", msg)
	} else {
		s.Phone = e164
	}

	if v := strings.TrimSpace(s.Email); v == "" {
		s.Email = ""
	} else if addr, ok := normalizeEmail(v); !ok {
		errs.Add("email", s.Email, "not a valid email address: use a bare address like name@example.org")
	} else {
		s.Email = addr
	}

	if v := strings.ToUpper(strings.TrimSpace(s.Slack)); v == "" {
		s.Slack = ""
	} else if !slackPattern.MatchString(v) {
		errs.Add("slack", s.Slack, "not a Slack channel or user ID: use the ID (like C0123ABCDE or U0123ABCDE) from the channel's or member's details, not its name")
	} else {
		s.Slack = v
	}

	if s.QuietHours != nil {
		s.QuietHours.normalize(&errs)
	}

	s.OptedOut = normalizeKinds(&errs, "opted_out", s.OptedOut)
	return errs
}

// Address returns s's address on channels of kind, or "" when s has none.
func (s *Subscriber) Address(kind channels.Kind) string {
	switch kind {
	case channels.KindSMS:
		return s.Phone
	case channels.KindEmail:
		return s.Email
	case channels.KindSlack:
		return s.Slack
	}
	return ""
}

// HasOptedOut reports whether s asked not to be contacted on kind. It
// compares case-insensitively so an un-normalised value still counts: a
// missed opt-out is worse than a missed message.
func (s *Subscriber) HasOptedOut(kind channels.Kind) bool {
	for _, k := range s.OptedOut {
		if strings.EqualFold(strings.TrimSpace(k), string(kind)) {
			return true
		}
	}
	return false
}

// normalizeID trims and lower-cases an id and checks its shape.
func normalizeID(errs *fields.List, path, raw string) (string, bool) {
	id := strings.ToLower(strings.TrimSpace(raw))
	if id == "" {
		errs.Add(path, "", "missing: give an id of letters, digits, '.', '_' or '-'")
		return "", false
	}
	if !idPattern.MatchString(id) {
		errs.Add(path, raw, "not a valid id: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, no spaces")
		return "", false
	}
	return id, true
}

// normalizeWords trims and lower-cases roles or tags, drops empty entries
// and duplicates, and rejects characters that would break the CSV list
// form or a one-line log.
func normalizeWords(errs *fields.List, path string, in []string) []string {
	var out []string
	n := len(*errs)
	for _, raw := range in {
		w := strings.ToLower(strings.TrimSpace(raw))
		if w == "" {
			continue
		}
		if strings.ContainsRune(w, ';') || hasControl(w) {
			errs.Add(path, raw, "contains ';' or a control character: give each value as a separate list entry")
			continue
		}
		out = appendUnique(out, w)
	}
	if len(*errs) > n {
		return in // keep the input so the caller can show it
	}
	return out
}

// normalizeNations canonicalises nation names, reporting unknown ones.
func normalizeNations(errs *fields.List, path string, in []string) []string {
	var out []string
	n := len(*errs)
	for _, raw := range in {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		n, ok := CanonicalNation(raw)
		if !ok {
			errs.Add(path, raw, "unknown nation: %s", nationsHint)
			continue
		}
		out = appendUnique(out, n)
	}
	if len(*errs) > n {
		return in // keep the input so the caller can show it
	}
	return out
}

// normalizeKinds canonicalises channel kinds, reporting unknown ones.
func normalizeKinds(errs *fields.List, path string, in []string) []string {
	var out []string
	n := len(*errs)
	for _, raw := range in {
		v := strings.ToLower(strings.TrimSpace(raw))
		if v == "" {
			continue
		}
		k, err := channels.ParseKind(v)
		if err != nil {
			errs.Add(path, raw, "unknown channel kind: use sms, email or slack")
			continue
		}
		out = appendUnique(out, string(k))
	}
	if len(*errs) > n {
		return in // keep the input so the caller can show it
	}
	return out
}

// canonicalLocale maps "", "en", "en-GB", "cy_GB", "CY" and the like to "en"
// or "cy". Only the language subtag decides; the rest must merely look like
// BCP 47 subtags.
func canonicalLocale(raw string) (string, bool) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return DefaultLocale, true
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '-' || r == '_' })
	if len(parts) == 0 || strings.Count(v, "-")+strings.Count(v, "_") != len(parts)-1 {
		return "", false
	}
	for _, p := range parts[1:] {
		if len(p) > 8 || !isASCIIAlnum(p) {
			return "", false
		}
	}
	lang := strings.ToLower(parts[0])
	for _, l := range locales {
		if lang == l {
			return l, true
		}
	}
	return "", false
}

// checkTimeZone returns "" when tz loads, or the problem and its fix.
func checkTimeZone(tz string) string {
	// "Local" loads, but means whatever machine crier happens to run on.
	if tz == "Local" {
		return "the server's local zone is not a subscriber's zone: use an IANA name like Europe/London"
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return "unknown time zone: use an IANA name like Europe/London (names are case-sensitive)"
	}
	return ""
}

// normalizePhone parses a number written any reasonable way (GB when no
// country code is given) and returns it in E.164, or a message saying what
// is wrong with it and how to fix it. Only numbers that can receive SMS
// pass: mobile, or fixed-or-mobile where the numbering plan cannot tell
// (North America).
func normalizePhone(v string) (string, string) {
	n, err := phonenumbers.Parse(v, "GB")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", "not a valid phone number: " + phoneFix
	}
	if n.GetExtension() != "" {
		return "", "has an extension, which SMS cannot reach: " + smsFix
	}
	switch t := phonenumbers.GetNumberType(n); t {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	case phonenumbers.FIXED_LINE:
		return "", "is a landline, which cannot receive SMS: " + smsFix
	default:
		return "", "is a " + numberTypeName(t) + " number, which cannot receive SMS: " + smsFix
	}
	return phonenumbers.Format(n, phonenumbers.E164), ""
}

func numberTypeName(t phonenumbers.PhoneNumberType) string {
	switch t {
	case phonenumbers.TOLL_FREE:
		return "freephone"
	case phonenumbers.PREMIUM_RATE:
		return "premium-rate"
	case phonenumbers.SHARED_COST:
		return "shared-cost"
	case phonenumbers.VOIP:
		return "VoIP"
	case phonenumbers.PERSONAL_NUMBER:
		return "personal (call-forwarding)"
	case phonenumbers.PAGER:
		return "pager"
	case phonenumbers.UAN:
		return "non-geographic (UAN)"
	case phonenumbers.VOICEMAIL:
		return "voicemail"
	}
	return "non-mobile"
}

// normalizeEmail returns the bare, lower-cased address from anything
// net/mail accepts, refusing forms that parse but cannot be mailed to as a
// plain address: quoted local parts with spaces, domain literals and
// dotless domains.
func normalizeEmail(v string) (string, bool) {
	a, err := mail.ParseAddress(v)
	if err != nil {
		return "", false
	}
	addr := strings.ToLower(a.Address)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", false
	}
	domain := addr[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.ContainsAny(domain, "[]") {
		return "", false
	}
	for _, r := range addr {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"<>(),;:\`, r) {
			return "", false
		}
	}
	return addr, true
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func isASCIIAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}
