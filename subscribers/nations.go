package subscribers

import "strings"

// nations is the canonical list, sorted; Nations hands out copies so no
// caller can change what every other caller sees.
var nations = [...]string{"england", "northern-ireland", "scotland", "wales"}

// nationAliases maps the forms people write (after lower-casing and turning
// spaces and underscores into hyphens) to the canonical nation.
var nationAliases = map[string]string{
	"england":          "england",
	"scotland":         "scotland",
	"wales":            "wales",
	"cymru":            "wales",
	"northern-ireland": "northern-ireland",
	"northernireland":  "northern-ireland",
	"ni":               "northern-ireland",
	"n-ireland":        "northern-ireland",
}

// Nations returns the canonical UK nation names crier knows, sorted.
func Nations() []string {
	out := make([]string, len(nations))
	copy(out, nations[:])
	return out
}

// CanonicalNation returns the canonical name of the nation s names
// ("NI", "Northern Ireland" and "northern_ireland" all give
// "northern-ireland"), and false when s is not a nation crier knows.
func CanonicalNation(s string) (string, bool) {
	c, ok := nationAliases[nationKey(s)]
	return c, ok
}

// nationKey lower-cases s and folds runs of spaces, underscores, hyphens and
// dots into one hyphen, so spelling variants meet in one map key.
func nationKey(s string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch r {
		case ' ', '\t', '_', '-', '.':
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}

// nationsHint is the fix shown for an unknown nation.
const nationsHint = "use england, northern-ireland, scotland or wales (ni and \"northern ireland\" also work)"
