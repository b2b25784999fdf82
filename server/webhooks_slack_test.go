package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/dispatch"
)

// slackClick is the form body Slack posts when someone presses a button.
func slackClick(t *testing.T, actionID, value, user string) string {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"type":         "block_actions",
		"user":         map[string]string{"id": user, "username": "duty.manager"},
		"api_app_id":   "A0CRIER",
		"response_url": "https://hooks.slack.com/actions/T0/1/xyz",
		"container":    map[string]string{"type": "message", "message_ts": "1768485600.000100", "channel_id": "C0RESPONSE1"},
		"actions": []map[string]string{{"type": "button", "block_id": "crier_ack", "action_id": actionID, "value": value,
			"action_ts": "1768485700.000200"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"payload": {string(payload)}}.Encode()
}

// slackSign signs body as Slack does, at ts with secret.
func slackSign(secret, body string, ts time.Time) (sig, stamp string) {
	stamp = strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + stamp + ":" + body))
	return "v0=" + hex.EncodeToString(m.Sum(nil)), stamp
}

// postSlack posts body with the given signature headers ("" leaves one out).
func (h *ackHarness) postSlack(body, sig, stamp string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+SlackInteractionsPath, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Slack-Signature", sig)
	}
	if stamp != "" {
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *ackHarness) slackOutcomes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, o := range h.observed {
		if strings.HasPrefix(o, SlackInteractionsPath) {
			out = append(out, strings.TrimPrefix(o, SlackInteractionsPath+" "))
		}
	}
	return out
}

func TestSlackInteractions_SignedClickAcknowledges(t *testing.T) {
	h := newAckHarness(t)
	// The Slack channel's button carries a token for the delivery itself.
	a, err := h.st.AckLinkTarget(t.Context(), h.trigger, "dr-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := h.signer.Token(dispatch.AckClaim{DeliveryID: a.DeliveryID, Expires: h.clk.Now().Add(time.Hour)})
	body := slackClick(t, "crier_ack", tok, "U0DUTY")
	sig, stamp := slackSign(slackTestSecret, body, time.Now())
	for i := range 2 { // Slack retries; a replay inside its window changes nothing
		if code, resp := h.postSlack(body, sig, stamp); code != http.StatusOK {
			t.Fatalf("click %d: %d %q", i, code, resp)
		}
	}
	acks := h.acks()
	if len(acks) != 1 || acks["dr-a"].Via != "slack" || acks["dr-a"].Detail != "U0DUTY" || acks["dr-a"].DeliveryID != a.DeliveryID {
		t.Errorf("acks %+v, want dr-a's by slack from U0DUTY", acks)
	}
	if got := strings.Join(h.slackOutcomes(), ","); got != "acknowledged,duplicate" {
		t.Errorf("outcomes %s", got)
	}
}

func TestSlackInteractions_Refused(t *testing.T) {
	h := newAckHarness(t)
	tok := h.signer.Token(dispatch.AckClaim{TriggerID: h.trigger, SubscriberID: "dr-b", Expires: h.clk.Now().Add(time.Hour)})
	body := slackClick(t, "crier_ack", tok, "U0DUTY")
	now := time.Now()
	goodSig, goodStamp := slackSign(slackTestSecret, body, now)
	wrongSig, _ := slackSign("not-the-signing-secret-0123456789", body, now)
	staleSig, staleStamp := slackSign(slackTestSecret, body, now.Add(-10*time.Minute))
	tampered := strings.Replace(body, "U0DUTY", "U0EVIL", 1)
	tests := []struct {
		name, body, sig, stamp, outcome string
	}{
		{"wrong secret", body, wrongSig, goodStamp, "bad_signature"},
		{"body changed after signing", tampered, goodSig, goodStamp, "bad_signature"},
		{"stale timestamp", body, staleSig, staleStamp, "stale"},
		{"no signature", body, "", goodStamp, "bad_signature"},
		{"no timestamp", body, goodSig, "", "bad_signature"},
		{"malformed signature", body, "v0=zz", goodStamp, "bad_signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := h.postSlack(tt.body, tt.sig, tt.stamp)
			if code != http.StatusUnauthorized {
				t.Errorf("%d %q, want 401", code, resp)
			}
			if strings.Contains(resp, slackTestSecret) {
				t.Error("the answer contains the signing secret")
			}
		})
	}
	if a := h.acks(); len(a) != 0 {
		t.Fatalf("an unverified request acknowledged: %+v", a)
	}
	want := []string{"bad_signature", "bad_signature", "stale", "bad_signature", "bad_signature", "bad_signature"}
	if got := h.slackOutcomes(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

func TestSlackInteractions_SignedButNotOurs(t *testing.T) {
	h := newAckHarness(t)
	good := h.signer.Token(dispatch.AckClaim{TriggerID: h.trigger, SubscriberID: "dr-b", Expires: h.clk.Now().Add(time.Hour)})
	expired := h.signer.Token(dispatch.AckClaim{TriggerID: h.trigger, SubscriberID: "dr-b", Expires: h.clk.Now().Add(-time.Minute)})
	tests := []struct {
		name, body, outcome string
	}{
		{"another app's button", slackClick(t, "approve_deploy", good, "U1"), ""},
		{"altered token", slackClick(t, "crier_ack", good[:len(good)-2]+"zz", "U1"), "invalid"},
		{"expired token", slackClick(t, "crier_ack", expired, "U1"), "expired"},
		{"not a block action", url.Values{"payload": {`{"type":"view_closed","user":{"id":"U1"}}`}}.Encode(), "ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.slackOutcomes())
			sig, stamp := slackSign(slackTestSecret, tt.body, time.Now())
			if code, resp := h.postSlack(tt.body, sig, stamp); code != http.StatusOK {
				t.Errorf("%d %q, want 200 (Slack shows anything else as an error)", code, resp)
			}
			got := strings.Join(h.slackOutcomes()[before:], ",")
			if got != tt.outcome {
				t.Errorf("outcome %q, want %q", got, tt.outcome)
			}
		})
	}
	bad := "payload=%7Bnot-json"
	sig, stamp := slackSign(slackTestSecret, bad, time.Now())
	if code, _ := h.postSlack(bad, sig, stamp); code != http.StatusBadRequest {
		t.Errorf("a signed request with a broken payload: %d, want 400", code)
	}
	if a := h.acks(); len(a) != 0 {
		t.Errorf("acknowledged: %+v", a)
	}
}
