package templates

import (
	"strings"
)

// DigestHeader opens a digest: the message that carries, in one, the
// messages a per-subscriber cap held back, in the locale's language.
func DigestHeader(locale string) string {
	if locale == "cy" {
		return "Crynodeb: negeseuon a ddaliwyd yn ôl er mwyn peidio â'ch gorlwytho:"
	}
	return "Digest: messages held back so as not to overload you:"
}

// DigestLine is one held-back message in a digest: its subject, or its
// first non-empty line, on one line.
func DigestLine(subject, text string) string {
	line := strings.TrimSpace(subject)
	if line == "" {
		for _, l := range strings.Split(text, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				line = l
				break
			}
		}
	}
	return "- " + strings.Join(strings.Fields(line), " ")
}
