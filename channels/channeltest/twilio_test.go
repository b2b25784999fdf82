package channeltest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// post sends form to the peer's Messages endpoint for account with the
// given Basic credentials and decodes the JSON answer.
func post(t *testing.T, p *channeltest.TwilioPeer, account, user, pass string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/2010-04-01/Accounts/"+account+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON: %q", b)
	}
	return resp.StatusCode, out
}

func TestTwilioPeer_Post_Table(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	ok := url.Values{"To": {"+447400123456"}, "From": {p.From}, "Body": {"hello"}}
	tests := []struct {
		name       string
		account    string
		user, pass string
		form       url.Values
		wantStatus int
		wantCode   float64 // 0 for success
	}{
		{"auth token", p.AccountSID, p.AccountSID, p.AuthToken, ok, 201, 0},
		{"api key", p.AccountSID, p.APIKeySID, p.APIKeySecret, ok, 201, 0},
		{"wrong token", p.AccountSID, p.AccountSID, "nope", ok, 401, 20003},
		{"other account", "AC" + strings.Repeat("f", 32), p.AccountSID, p.AuthToken, ok, 404, 20404},
		{"no To", p.AccountSID, p.AccountSID, p.AuthToken, url.Values{"From": {p.From}, "Body": {"x"}}, 400, 21604},
		{"no sender", p.AccountSID, p.AccountSID, p.AuthToken, url.Values{"To": {"+447400123456"}, "Body": {"x"}}, 400, 21603},
		{"no body", p.AccountSID, p.AccountSID, p.AuthToken, url.Values{"To": {"+447400123456"}, "From": {p.From}}, 400, 21602},
		{"body too long", p.AccountSID, p.AccountSID, p.AuthToken,
			url.Values{"To": {"+447400123456"}, "From": {p.From}, "Body": {strings.Repeat("x", 1601)}}, 400, 21617},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, p, tt.account, tt.user, tt.pass, tt.form)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", status, tt.wantStatus, body)
			}
			if tt.wantCode != 0 {
				if body["code"] != tt.wantCode || body["status"] != float64(tt.wantStatus) || body["more_info"] == "" {
					t.Errorf("error body = %v, want code %v", body, tt.wantCode)
				}
				return
			}
			sid, _ := body["sid"].(string)
			if len(sid) != 34 || !strings.HasPrefix(sid, "SM") || body["num_segments"] != "1" || body["status"] != "queued" {
				t.Errorf("message = %v", body)
			}
		})
	}
	reqs := p.Requests()
	if len(reqs) != len(tests) {
		t.Fatalf("recorded %d requests, want %d", len(reqs), len(tests))
	}
	if r := reqs[1]; r.N != 2 || r.User != p.APIKeySID || !r.Authorized || r.To != "+447400123456" || r.Status != 201 || r.SID == "" {
		t.Errorf("request 2 recorded as %+v", r)
	}
	if r := reqs[2]; r.Authorized || r.Status != 401 || r.SID != "" {
		t.Errorf("request 3 recorded as %+v", r)
	}
	if reqs[0].SID == reqs[1].SID {
		t.Errorf("two messages share SID %s", reqs[0].SID)
	}
}

func TestTwilioPeer_Respond_ScriptsAfterAuth(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	p := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(n int, form url.Values) *channeltest.TwilioResponse {
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
		if form.Get("To") == "+447400000000" {
			return channeltest.TwilioError(400, 21211, "invalid")
		}
		return nil
	}))
	form := url.Values{"To": {"+447400000000"}, "From": {p.From}, "Body": {"x"}}
	if status, body := post(t, p, p.AccountSID, p.AccountSID, p.AuthToken, form); status != 400 || body["code"] != float64(21211) {
		t.Errorf("scripted answer = %d %v", status, body)
	}
	form.Set("To", "+447400123456")
	if status, _ := post(t, p, p.AccountSID, p.AccountSID, p.AuthToken, form); status != 201 {
		t.Errorf("unscripted answer = %d, want 201", status)
	}
	if status, _ := post(t, p, p.AccountSID, p.AccountSID, "bad", form); status != 401 {
		t.Errorf("bad auth = %d, want 401 before the hook", status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Errorf("hook saw requests %v, want [1 2]", seen)
	}
}

func TestTwilioSegments_Table(t *testing.T) {
	tests := []struct {
		body string
		want int
	}{
		{"", 1},
		{strings.Repeat("a", 160), 1},
		{strings.Repeat("a", 161), 2},
		{strings.Repeat("a", 306), 2},
		{strings.Repeat("a", 307), 3},
		{strings.Repeat("€", 80), 1},  // extension characters take two septets
		{strings.Repeat("€", 81), 2},  // 162 septets
		{strings.Repeat("é", 160), 1}, // in the GSM basic set
		{strings.Repeat("✓", 70), 1},
		{strings.Repeat("✓", 71), 2},
		{strings.Repeat("✓", 135), 3},
		{strings.Repeat("😀", 35), 1}, // a surrogate pair is two UCS-2 units
		{strings.Repeat("😀", 36), 2},
	}
	for _, tt := range tests {
		if got := channeltest.TwilioSegments(tt.body); got != tt.want {
			t.Errorf("TwilioSegments(%d × %q) = %d, want %d", len([]rune(tt.body)), firstRune(tt.body), got, tt.want)
		}
	}
}

func firstRune(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}
