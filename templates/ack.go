package templates

import "time"

// AckReply is how an SMS in locale asks for an acknowledgement by reply:
// "Reply ACK" in English, "Atebwch ACK" in Welsh (the formal imperative,
// as public bodies write to the public). The keyword itself stays ACK in
// every language, because that is the word crier's inbound SMS handler
// reads. An unknown locale gets English.
func AckReply(locale string) string {
	if locale == "cy" {
		return "Atebwch ACK"
	}
	return "Reply ACK"
}

// SampleAck is SampleDataFor(locale) for a message that asks for
// acknowledgement by 08:30 on the sample day, with a recipient's signed
// link: the ack branch of the alert, update and message templates.
func SampleAck(locale string) Data {
	d := SampleDataFor(locale)
	due := time.Date(2026, time.June, 16, 7, 30, 0, 0, time.UTC)
	d.AckRequired = true
	d.AckByAt = due
	d.AckBy = FormatTime(inLondon(due), locale)
	d.AckReply = AckReply(locale)
	d.AckURL = "https://crier.example.org/ack/AQF7c3ViLTAxOTPVnJ5pK4iEp0dA8yQ2xw3Zp1bM"
	return d
}

// inLondon is t in Europe/London, or in BST when the zone database is
// missing (the samples are in June).
func inLondon(t time.Time) time.Time {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		london = time.FixedZone("BST", 3600)
	}
	return t.In(london)
}
