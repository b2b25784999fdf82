package channeltest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// slackCall posts a form to the peer and decodes the JSON answer.
func slackCall(t *testing.T, p *SlackPeer, method string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(p.URL+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestSlackPeer_Answer_Table(t *testing.T) {
	p := NewSlackPeer(t)
	_, parent := slackCall(t, p, "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "text": {"parent"}})
	parentTS, _ := parent["ts"].(string)
	tests := []struct {
		name      string
		method    string
		form      url.Values
		status    int
		wantError string // "" for ok:true
	}{
		{"no token", "chat.postMessage", url.Values{"channel": {"C1"}, "text": {"x"}}, 200, "not_authed"},
		{"wrong token", "chat.postMessage", url.Values{"token": {"xoxb-wrong"}, "channel": {"C1"}, "text": {"x"}}, 200, "invalid_auth"},
		{"no channel", "chat.postMessage", url.Values{"token": {p.Token}, "text": {"x"}}, 200, "channel_not_found"},
		{"no text", "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}}, 200, "no_text"},
		{"bad blocks", "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "blocks": {"[{"}}, 200, "invalid_blocks"},
		{"long header", "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"},
			"blocks": {`[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("x", 151) + `"}}]`}}, 200, "invalid_blocks"},
		{"update unknown", "chat.update", url.Values{"token": {p.Token}, "channel": {"C1"}, "ts": {"1.000001"}, "text": {"x"}}, 200, "message_not_found"},
		{"update parent", "chat.update", url.Values{"token": {p.Token}, "channel": {"C1"}, "ts": {parentTS}, "text": {"x"}}, 200, ""},
		{"unknown method", "chat.delete", url.Values{"token": {p.Token}}, 404, "unknown_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := slackCall(t, p, tt.method, tt.form)
			gotErr, _ := out["error"].(string)
			if status != tt.status || gotErr != tt.wantError || out["ok"] != (tt.wantError == "") {
				t.Fatalf("got %d %v, want %d error %q", status, out, tt.status, tt.wantError)
			}
		})
	}
}

func TestSlackPeer_Posts_ThreadsAndUniqueTS(t *testing.T) {
	p := NewSlackPeer(t)
	_, parent := slackCall(t, p, "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "text": {"parent"}})
	parentTS := parent["ts"].(string)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, err := http.PostForm(p.URL+"chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "text": {"r"}, "thread_ts": {parentTS}})
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, post := range p.Posts()[1:] {
		if post.RespTS == "" || seen[post.RespTS] || post.RespTS <= parentTS || !post.Threaded || post.ThreadTS != parentTS {
			t.Fatalf("post %d: ts %q threaded %v", post.N, post.RespTS, post.Threaded)
		}
		seen[post.RespTS] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d unique replies, want 20", len(seen))
	}
	if strings.Contains(p.Posts()[0].Form.Encode(), p.Token) {
		t.Fatal("recorded form keeps the token")
	}
}

func TestSlackPeer_Webhook_Answer(t *testing.T) {
	p := NewSlackPeer(t)
	tests := []struct {
		name   string
		url    string
		body   string
		status int
		want   string
	}{
		{"ok", p.WebhookURL, `{"text":"hello <!channel>"}`, 200, "ok"},
		{"bad json", p.WebhookURL, `{`, 400, "invalid_payload"},
		{"no text", p.WebhookURL, `{}`, 400, "no_text"},
		{"wrong path", strings.TrimSuffix(p.URL, "/") + "/services/T/B/guess", `{"text":"x"}`, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(tt.url, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.want != "" && string(b) != tt.want) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
	if got := p.Posts()[0]; got.Method != "webhook" || got.Text != "hello <!channel>" || got.Channel != p.WebhookChannel {
		t.Fatalf("recorded %+v", got)
	}
}

func TestSlackPeer_Omit(t *testing.T) {
	for _, field := range []string{"message.thread_ts", "message"} {
		t.Run(field, func(t *testing.T) {
			p := NewSlackPeer(t, WithSlackOmit(field))
			_, parent := slackCall(t, p, "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "text": {"parent"}})
			parentTS, _ := parent["ts"].(string)
			_, reply := slackCall(t, p, "chat.postMessage", url.Values{"token": {p.Token}, "channel": {"C1"}, "text": {"r"}, "thread_ts": {parentTS}})
			msg, hasMsg := reply["message"].(map[string]any)
			_, hasThread := msg["thread_ts"]
			if reply["ok"] != true || reply["ts"] == "" || hasThread || hasMsg != (field != "message") {
				t.Errorf("answer %v, want ok and ts without %s", reply, field)
			}
			if got := p.Posts()[1]; !got.Threaded || got.ThreadTS != parentTS {
				t.Errorf("the reply was not filed in the thread: %+v", got)
			}
		})
	}
}
