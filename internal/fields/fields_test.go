package fields

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecret_NeverPrints(t *testing.T) {
	const v = "xoxb-real-token-0123456789"
	s := Secret(v)
	type holder struct {
		Token Secret `json:"token"`
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "token", s)
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(holder{s})
	outputs := []string{fmt.Sprint(s), fmt.Sprintf("%s %v %q %+v %#v", s, s, s, holder{s}, holder{s}), j.String(), logged.String()}
	for _, out := range outputs {
		if strings.Contains(out, v) {
			t.Errorf("secret printed: %s", out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%q does not show %s", out, Redacted)
		}
	}
	if s.Reveal() != v || !s.IsSet() || Secret("").IsSet() {
		t.Fatal("Reveal/IsSet")
	}
}

func TestList_MergeAndErr(t *testing.T) {
	var l List
	if l.Err() != nil {
		t.Fatal("empty list is an error")
	}
	var sub List
	sub.Add("from", "+1", "is not %s", "valid")
	l.Merge("channels.sms.twilio", sub)
	l.Add("store.path", "", "is required")
	err := l.Err()
	got, ok := AsList(fmt.Errorf("wrapped: %w", err))
	if !ok || len(got) != 2 || got[0].Path != "channels.sms.twilio.from" {
		t.Fatalf("AsList = %v, %v", got, ok)
	}
	want := "channels.sms.twilio.from: \"+1\": is not valid\nstore.path: is required"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}
