package templates

import (
	"sort"
	"strings"
	"unicode/utf16"
)

// Encoding is the alphabet an SMS travels in. It decides how many
// characters fit in a segment, and so what a message costs.
type Encoding string

// The two encodings a handset and Twilio choose between.
const (
	// GSM7 is the GSM 03.38 default alphabet: 7-bit septets, 160 per
	// single message, 153 per part of a concatenated one.
	GSM7 Encoding = "GSM-7"
	// UCS2 is used as soon as one character is outside GSM 03.38: 16-bit
	// UTF-16 code units, 70 per single message, 67 per part.
	UCS2 Encoding = "UCS-2"
)

// Segment capacities, in septets (GSM-7) or UTF-16 code units (UCS-2). A
// concatenated message loses room in each part to the user data header.
const (
	gsmSingle  = 160
	gsmPart    = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// gsmBasic is the GSM 03.38 default alphabet in code order (0x00–0x7F),
// without 0x1B, which is the escape to the extension table.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
	" !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the GSM 03.38 extension table: each of these is sent as
// the escape septet plus one, so it costs two septets.
const gsmExtension = "\f^{}\\[~]|€"

// septets returns how many septets r costs in GSM-7, or 0 when r cannot be
// sent in GSM-7 at all.
func septets(r rune) int {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' {
		return 1 // the common case, without scanning the tables
	}
	if strings.ContainsRune(gsmBasic, r) {
		return 1
	}
	if strings.ContainsRune(gsmExtension, r) {
		return 2
	}
	return 0
}

// SMSEncoding reports the encoding s will be sent in: GSM-7 when every
// character is in the GSM 03.38 basic set or its extension table, UCS-2
// otherwise. One Welsh ŵ or ŷ is enough to make a message UCS-2.
func SMSEncoding(s string) Encoding {
	for _, r := range s {
		if septets(r) == 0 {
			return UCS2
		}
	}
	return GSM7
}

// SMSSegments reports the encoding of s and how many segments it takes.
// In GSM-7 up to 160 septets fit in one message and 153 in each part of a
// longer one; an extension character (^ { } \ [ ~ ] | € and form feed)
// costs two septets and is never split across parts. In UCS-2 up to 70
// UTF-16 code units fit in one message and 67 in each part; a character
// outside the Basic Multilingual Plane (most emoji) costs two units and is
// never split. The empty string counts as one segment, because a message
// that is sent at all is charged for one.
func SMSSegments(s string) (Encoding, int) {
	enc := SMSEncoding(s)
	single, part := gsmSingle, gsmPart
	cost := septets
	if enc == UCS2 {
		single, part = ucs2Single, ucs2Part
		cost = func(r rune) int { return utf16.RuneLen(r) }
	}
	total := 0
	for _, r := range s {
		total += cost(r)
	}
	if total <= single {
		return enc, 1
	}
	// Pack parts the way a sender does: a character that does not fit
	// whole in the current part starts the next one.
	parts, used := 1, 0
	for _, r := range s {
		c := cost(r)
		if used+c > part {
			parts++
			used = 0
		}
		used += c
	}
	return enc, parts
}

// smsReplacer maps typographic characters that word processors and
// incident tools produce to the plain GSM-7 characters a reader would
// expect, so that a curly apostrophe does not double the cost of a
// message. Welsh letters are not in it: they are kept.
var smsReplacer = strings.NewReplacer(
	"\r\n", "\n", "\r", "\n",
	"\u2018", "'", "\u2019", "'", "\u201A", "'", "\u201B", "'", "\u2032", "'", "\u00B4", "'", "`", "'",
	"\u201C", `"`, "\u201D", `"`, "\u201E", `"`, "\u201F", `"`, "\u2033", `"`, "\u00AB", `"`, "\u00BB", `"`,
	"\u2010", "-", "\u2011", "-", "\u2012", "-", "\u2013", "-", "\u2014", "-", "\u2015", "-", "\u2212", "-",
	"\u2022", "-",
	"\u2026", "...",
	"\t", " ", "\u00A0", " ", "\u2000", " ", "\u2001", " ", "\u2002", " ", "\u2003", " ", "\u2004", " ",
	"\u2005", " ", "\u2006", " ", "\u2007", " ", "\u2008", " ", "\u2009", " ", "\u200A", " ", "\u202F", " ",
	"\u205F", " ", "\u3000", " ",
	"\u00AD", "", "\u200B", "", "\u200C", "", "\u200D", "", "\u2060", "", "\uFEFF", "",
)

// NormalizeSMS prepares rendered text for SMS: typographic quotes, dashes,
// bullets, the ellipsis and unusual spaces become their plain equivalents
// and invisible characters are dropped; Welsh letters (â ŵ ŷ and the rest)
// and any other character are kept as they are, even when that forces
// UCS-2, because the Welsh Language Standards do not allow Welsh to be
// mangled to save money. Each line is trimmed and runs of spaces become
// one, runs of blank lines become one blank line, and the result is
// trimmed.
func NormalizeSMS(s string) string {
	return tidyLines(smsReplacer.Replace(s), func(l string) string { return strings.Join(strings.Fields(l), " ") })
}

// FitSMS returns s unchanged when it fits in maxSegments (at least 1);
// otherwise it cuts s at the last word boundary that leaves room for
// pointer (for example " … full text by email") and appends it. Text is
// never cut inside a word; trailing spaces and dangling , ; : - before the
// cut are dropped. The pointer's typographic characters are normalised as
// in NormalizeSMS, so an ellipsis in it does not force UCS-2. When not even
// the first word fits with the pointer, the result is the pointer alone.
func FitSMS(s string, maxSegments int, pointer string) string {
	if maxSegments < 1 {
		maxSegments = 1
	}
	if _, n := SMSSegments(s); n <= maxSegments {
		return s
	}
	pointer = smsReplacer.Replace(pointer)
	// Word boundaries are the starts of runs of white space. The segment
	// count of prefix+pointer only grows with the prefix, so the longest
	// prefix that fits can be found by binary search.
	var cuts []int
	for i, r := range s {
		if (r == ' ' || r == '\n') && i > 0 && s[i-1] != ' ' && s[i-1] != '\n' {
			cuts = append(cuts, i)
		}
	}
	candidate := func(i int) string {
		return strings.TrimRight(s[:cuts[i]], " \n,;:-") + pointer
	}
	n := sort.Search(len(cuts), func(i int) bool {
		_, segs := SMSSegments(candidate(i))
		return segs > maxSegments
	})
	for i := n - 1; i >= 0; i-- {
		// A cut whose trimmed prefix is empty (s began with punctuation
		// only) is not useful; look for an earlier one.
		if c := candidate(i); strings.TrimSpace(c) != strings.TrimSpace(pointer) {
			return c
		}
	}
	return strings.TrimSpace(pointer)
}
