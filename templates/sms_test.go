package templates

import (
	"strings"
	"testing"
)

func TestSMSSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	w := func(n int) string { return "ŵ" + strings.Repeat("a", n-1) } // n UTF-16 units, UCS-2
	const smile = "😀"                                                 // a surrogate pair: two units
	tests := []struct {
		name string
		in   string
		enc  Encoding
		segs int
	}{
		{"empty counts as one", "", GSM7, 1},
		{"gsm 160", a(160), GSM7, 1},
		{"gsm 161", a(161), GSM7, 2},
		{"gsm 306", a(306), GSM7, 2},
		{"gsm 307", a(307), GSM7, 3},
		{"extended counts double: 80 euro signs", strings.Repeat("€", 80), GSM7, 1},
		{"extended counts double: 81 euro signs", strings.Repeat("€", 81), GSM7, 2},
		{"extended 159+2 septets", a(159) + "{", GSM7, 2},
		// 152 + 2 would split the escape pair, so "€" starts part 2:
		// 152 | 2+152 = 154 > 153, so a third part.
		{"extended never split at boundary", a(152) + "€" + a(152), GSM7, 3},
		{"extended fits exactly", a(151) + "€" + a(153), GSM7, 2},
		{"all extension chars", "^{}\\[~]|€\f", GSM7, 1},
		{"gsm basic specials", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM7, 1},
		{"one ŵ makes UCS-2", "ŵ", UCS2, 1},
		{"ucs2 70", w(70), UCS2, 1},
		{"ucs2 71", w(71), UCS2, 2},
		{"ucs2 134", w(134), UCS2, 2},
		{"ucs2 135", w(135), UCS2, 3},
		{"ŷ and â also", "ŷâ", UCS2, 1},
		{"emoji is two units", strings.Repeat(smile, 35), UCS2, 1},
		{"emoji 36 = 72 units", strings.Repeat(smile, 36), UCS2, 2},
		// 66 units, then the pair would straddle 67: it moves to part 2,
		// which then holds 2+65 = 67 and the last unit needs part 3.
		{"emoji never split", w(66) + smile + a(66), UCS2, 3},
		{"backtick is not GSM", "`", UCS2, 1},
		{"curly quote is not GSM", "’", UCS2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, segs := SMSSegments(tt.in)
			if enc != tt.enc || segs != tt.segs {
				t.Errorf("SMSSegments = %s, %d; want %s, %d", enc, segs, tt.enc, tt.segs)
			}
			if got := SMSEncoding(tt.in); got != tt.enc {
				t.Errorf("SMSEncoding = %s, want %s", got, tt.enc)
			}
		})
	}
}

func TestSMSEncoding_BasicSetExactly(t *testing.T) {
	if n := len([]rune(gsmBasic)); n != 127 {
		t.Fatalf("basic set has %d characters, want 127 (128 less the escape)", n)
	}
	if n := len([]rune(gsmExtension)); n != 10 {
		t.Fatalf("extension table has %d characters, want 10", n)
	}
	for _, r := range gsmBasic {
		if septets(r) != 1 {
			t.Errorf("%q: %d septets, want 1", r, septets(r))
		}
	}
	for _, r := range gsmExtension {
		if septets(r) != 2 {
			t.Errorf("%q: %d septets, want 2", r, septets(r))
		}
	}
	// Welsh letters outside GSM 03.38 force UCS-2; the ones inside do not.
	for _, r := range "âêîôûŵŷÂÊÎÔÛŴŶëïÿẅáíóúẃýÁÍÓÚẂÝèìòùẁỳ" {
		if !strings.ContainsRune("èìòù", r) && septets(r) != 0 {
			t.Errorf("%q counted as GSM-7", r)
		}
	}
}

func TestNormalizeSMS(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"smart quotes", "“Use paper” – don’t wait — ‘now’", `"Use paper" - don't wait - 'now'`},
		{"ellipsis and nbsp", "More\u00a0soon…", "More soon..."},
		{"welsh letters kept", "Gŵyl Dŷ Câr: ô ŵ ŷ Ŵ Ŷ ẁ ỳ ä ë", "Gŵyl Dŷ Câr: ô ŵ ŷ Ŵ Ŷ ẁ ỳ ä ë"},
		{"invisible characters dropped", "zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"},
		{"blank lines collapsed", "\n\n  one  \n\n\n\n two\t\tthree \n\n", "one\n\ntwo three"},
		{"crlf", "a\r\nb\rc", "a\nb\nc"},
		{"bullets", "• one", "- one"},
		{"other characters kept", "Café 😀", "Café 😀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeSMS(tt.in); got != tt.want {
				t.Errorf("NormalizeSMS(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if enc := SMSEncoding(NormalizeSMS("“Quoted” – it’s fine…")); enc != GSM7 {
		t.Errorf("normalised typography is %s, want GSM-7", enc)
	}
}

func TestFitSMS(t *testing.T) {
	const pointer = " … full text by email"
	long := strings.Repeat("Use paper prescriptions until further notice, ", 12) // 564 characters
	welsh := strings.Repeat("Defnyddiwch bresgripsiynau papur dros y ffôn; ", 8)
	tests := []struct {
		name    string
		in      string
		max     int
		same    bool // fits already: returned unchanged
		justPtr bool // nothing fits but the pointer
	}{
		{"fits unchanged", "Short message with a curly’ quote", 1, true, false},
		{"gsm to one", long, 1, false, false},
		{"gsm to two", long, 2, false, false},
		{"gsm to three", long, 3, false, false},
		{"ucs2 to two", welsh, 2, false, false},
		{"ucs2 to three", welsh, 3, false, false},
		{"zero means one", long, 0, false, false},
		{"one enormous word", strings.Repeat("x", 500), 1, false, true},
	}
	ptr := smsReplacer.Replace(pointer)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FitSMS(tt.in, tt.max, pointer)
			max := max(tt.max, 1)
			if _, n := SMSSegments(got); n > max {
				t.Errorf("%d segments, want at most %d: %q", n, max, got)
			}
			switch {
			case tt.same:
				if got != tt.in {
					t.Errorf("changed a message that fits: %q", got)
				}
				return
			case tt.justPtr:
				if got != strings.TrimSpace(ptr) {
					t.Errorf("got %q, want the pointer alone", got)
				}
				return
			}
			body, ok := strings.CutSuffix(got, ptr)
			if !ok {
				t.Fatalf("pointer %q not appended: %q", ptr, got)
			}
			if !strings.HasPrefix(tt.in, body) {
				t.Fatalf("result is not a prefix of the input: %q", body)
			}
			// Never mid-word: the input continues with a separator after
			// the kept text (the trimmed comma or semicolon, or a space).
			if next := tt.in[len(body)]; !strings.ContainsRune(" \n,;:-", rune(next)) {
				t.Errorf("cut inside a word: ...%q | %q...", body[max0(len(body)-10):], tt.in[len(body):len(body)+10])
			}
			// And it uses the room: one more word would not fit.
			rest := strings.TrimLeft(tt.in[len(body):], " \n,;:-")
			nextWord, _, _ := strings.Cut(rest, " ")
			if _, n := SMSSegments(body + tt.in[len(body):len(tt.in)-len(rest)] + nextWord + ptr); n <= max {
				t.Errorf("cut too early: %q would also fit", nextWord)
			}
		})
	}
	if got := FitSMS(welsh, 2, pointer); !strings.Contains(got, "ô") {
		t.Errorf("Welsh letters lost: %q", got)
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func BenchmarkSMSSegments(b *testing.B) {
	gsm := strings.Repeat("Use paper WP10 prescriptions until further notice. ", 6)
	welsh := strings.Repeat("Defnyddiwch bresgripsiynau papur dros y ffôn. ", 6)
	b.Run("gsm7", func(b *testing.B) {
		for b.Loop() {
			SMSSegments(gsm)
		}
	})
	b.Run("ucs2", func(b *testing.B) {
		for b.Loop() {
			SMSSegments(welsh)
		}
	})
}

func BenchmarkFitSMS(b *testing.B) {
	long := strings.Repeat("Use paper prescriptions until further notice, ", 20)
	for b.Loop() {
		FitSMS(long, 2, " … full text by email")
	}
}
