package main

import (
	"log/slog"
	"regexp"
	"strings"
)

// Addresses reach log lines inside free text too: Twilio's 21211 says
// "The 'To' number +447400123410 is not a valid phone number", a mail
// server's 550 names the mailbox. maskInText masks them wherever they are,
// so logs can be shipped to a log service without the people's addresses.
// (The delivery log in the database keeps them: it is the evidence.)

var (
	// inTextPhone matches an international number: crier sends E.164 and
	// providers echo it, sometimes grouped with spaces or hyphens. A
	// leading + keeps timestamps, ids and durations out.
	inTextPhone = regexp.MustCompile(`\+[1-9](?:[ -]?[0-9]){6,14}`)
	inTextEmail = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+`)
)

// maskInText masks every phone number and email address in a string or
// error value; other values pass unchanged.
func maskInText(v slog.Value) slog.Value {
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindAny:
		err, ok := v.Any().(error)
		if !ok || err == nil {
			return v
		}
		s = err.Error()
	default:
		return v
	}
	if !strings.ContainsAny(s, "+@") {
		return v
	}
	masked := inTextEmail.ReplaceAllStringFunc(s, maskAddress)
	masked = inTextPhone.ReplaceAllStringFunc(masked, func(p string) string {
		return maskAddress(strings.NewReplacer(" ", "", "-", "").Replace(p))
	})
	if masked == s && v.Kind() == slog.KindString {
		return v
	}
	return slog.StringValue(masked)
}
