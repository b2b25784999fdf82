package slack

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/crier-dev/crier/channels"
)

func TestEscape_Table(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a & b", "a &amp; b"},
		{"<!channel> <@U123> <https://x|y>", "&lt;!channel&gt; &lt;@U123&gt; &lt;https://x|y&gt;"},
		{"&amp;", "&amp;amp;"},
		{"*bold* _it_ @here", "*bold* _it_ @here"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitText_Table(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"empty", "", 10, nil},
		{"fits", "short", 10, []string{"short"}},
		{"newline preferred", "aaaa bbb\ncccc", 10, []string{"aaaa bbb", "cccc"}},
		{"space", "aaaa bbbb cccc", 10, []string{"aaaa bbbb ", "cccc"}},
		{"hard cut", "abcdefghijklmnop", 10, []string{"abcdefghij", "klmnop"}},
		{"entity kept whole", "abcdefg&amp;xyz", 10, []string{"abcdefg", "&amp;xyz"}},
		{"link kept whole", "abcde<http://x>", 10, []string{"abcde", "<http://x>"}},
		{"runes not bytes", strings.Repeat("é", 12), 10, []string{strings.Repeat("é", 10), "éé"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitText(tt.in, tt.max)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("splitText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMessageLayout_LongSubject(t *testing.T) {
	lay, err := messageLayout(channels.Message{Key: "k", Subject: strings.Repeat("&", 200), Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := lay.blocks[0].(*slack.HeaderBlock)
	if !ok {
		t.Fatalf("first block is %T", lay.blocks[0])
	}
	text := h.Text.Text
	if n := utf8.RuneCountInString(text); n > maxHeader || !strings.HasSuffix(text, "&amp;…") {
		t.Fatalf("header of %d runes: %q", n, text)
	}
}
