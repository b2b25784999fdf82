package slack

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

// newSender builds a token-mode Sender against peer; mod may adjust the config.
func newSender(t *testing.T, peer *channeltest.SlackPeer, mod func(*Config), opts ...Option) *Sender {
	t.Helper()
	c := Config{Token: fields.Secret(peer.Token), APIURL: peer.URL, PerDestination: 1000}
	if mod != nil {
		mod(&c)
	}
	s, err := New("ops-slack", c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func blockTypes(p channeltest.SlackPost) []string {
	var out []string
	for _, b := range p.Blocks {
		typ, _ := b["type"].(string)
		out = append(out, typ)
	}
	return out
}

func incidentMessage() channels.Message {
	return channels.Message{
		DeliveryID: 77,
		Key:        "upd-9/sub-3/ops-slack",
		Address:    "C0123ABCD",
		Subject:    "SEV1 <!channel> @here referrals & dispatch down",
		Text:       "*Status:* investigating\nUse paper prescriptions &amp; call 999 for ambulances.",
		IncidentID: "INC-42",
		Metadata:   map[string]string{"trigger": "update"},
	}
}

func TestSender_Send_BlocksAndFallback(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	m := incidentMessage()

	rec, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	posts := peer.Posts()
	if len(posts) != 1 {
		t.Fatalf("peer got %d requests, want 1", len(posts))
	}
	p := posts[0]
	if p.Method != "chat.postMessage" || !p.Authorized || p.Status != http.StatusOK || p.Error != "" {
		t.Fatalf("peer got %s authorized=%v status=%d error=%q", p.Method, p.Authorized, p.Status, p.Error)
	}
	wantSubject := "SEV1 &lt;!channel&gt; @here referrals &amp; dispatch down"
	if want := wantSubject + "\n" + m.Text; p.Text != want {
		t.Errorf("fallback text = %q, want %q", p.Text, want)
	}
	if got := strings.Join(blockTypes(p), ","); got != "header,section,context" {
		t.Fatalf("blocks = %s", got)
	}
	texts := p.BlockTexts()
	if texts[0] != wantSubject || texts[1] != m.Text || texts[2] != "delivery "+m.Key {
		t.Errorf("block texts = %q", texts)
	}
	if p.Blocks[0]["text"].(map[string]any)["type"] != "plain_text" || p.Blocks[1]["text"].(map[string]any)["type"] != "mrkdwn" {
		t.Errorf("header must be plain_text and section mrkdwn: %s", p.BlocksJSON)
	}
	if p.UnfurlLinks != "false" || p.UnfurlMedia != "false" {
		t.Errorf("unfurl_links=%q unfurl_media=%q, want false", p.UnfurlLinks, p.UnfurlMedia)
	}
	if p.Metadata == nil || p.Metadata.EventType != "crier_delivery" {
		t.Fatalf("metadata = %s", p.MetadataJSON)
	}
	pl := p.Metadata.EventPayload
	if pl["delivery_key"] != m.Key || pl["incident_id"] != "INC-42" || pl["delivery_id"] != float64(77) || pl["trigger"] != "update" {
		t.Errorf("metadata payload = %v", pl)
	}
	if want := "C0123ABCD/" + p.RespTS; rec.ProviderID != want || rec.Thread != want || rec.Status != "ok" {
		t.Errorf("receipt = %+v, want ProviderID and Thread %q", rec, want)
	}
}

func TestSender_Send_NoMentionInjection(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	m := incidentMessage()
	m.Text = "rendered body"
	if _, err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	p := peer.Posts()[0]
	all := p.AllText() + "\n" + p.MetadataJSON
	if strings.Contains(all, "<!channel>") || strings.Contains(all, "<!") {
		t.Errorf("raw mention reached Slack: %q", all)
	}
	if !strings.Contains(all, "&lt;!channel&gt;") || !strings.Contains(all, "referrals &amp; dispatch") {
		t.Errorf("subject not escaped: %q", all)
	}
	// Bare @here only notifies when Slack is asked to link names.
	if p.Form.Has("link_names") || p.Form.Get("parse") == "full" {
		t.Errorf("mention parsing enabled: %v", p.Form)
	}
}

func TestSender_Send_ThreadReplyAndParentUpdate(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	s := newSender(t, peer, nil, WithClock(func() time.Time { return now }))
	ctx := context.Background()

	first, err := s.Send(ctx, incidentMessage())
	if err != nil {
		t.Fatal(err)
	}
	reply := incidentMessage()
	reply.Key = "upd-10/sub-3/ops-slack"
	reply.Subject = "Update: referrals restored"
	reply.Text = "Referrals are flowing again."
	reply.Thread = first.Thread
	reply.ThreadSummary = "Resolved <!here> & monitoring"
	second, err := s.Send(ctx, reply)
	if err != nil {
		t.Fatal(err)
	}

	posts := peer.Posts()
	if len(posts) != 3 {
		t.Fatalf("peer got %d requests, want post, reply, update", len(posts))
	}
	parentTS := posts[0].RespTS
	r, u := posts[1], posts[2]
	if r.Method != "chat.postMessage" || r.ThreadTS != parentTS || !r.Threaded {
		t.Errorf("reply: method %s thread_ts %q threaded %v, want thread_ts %q", r.Method, r.ThreadTS, r.Threaded, parentTS)
	}
	if want := "C0123ABCD/" + r.RespTS; second.ProviderID != want || second.Thread != first.Thread {
		t.Errorf("reply receipt = %+v, want ProviderID %q Thread %q", second, want, first.Thread)
	}
	if u.Method != "chat.update" || u.Channel != "C0123ABCD" || u.TS != parentTS || u.Status != http.StatusOK || u.Error != "" {
		t.Fatalf("update: %s channel %q ts %q status %d error %q", u.Method, u.Channel, u.TS, u.Status, u.Error)
	}
	texts := u.BlockTexts()
	if u.Text != "Resolved &lt;!here&gt; &amp; monitoring" || len(texts) != 2 || texts[0] != u.Text {
		t.Errorf("update text %q blocks %q", u.Text, texts)
	}
	if !strings.Contains(texts[1], "2 Mar 2026 08:00 UTC") || !strings.Contains(texts[1], "delivery upd-10/sub-3/ops-slack") {
		t.Errorf("update context = %q", texts[1])
	}
	if strings.Contains(u.AllText(), "<!here>") {
		t.Errorf("raw mention in update: %q", u.AllText())
	}
}

func TestSender_Send_ThreadWithoutSummary(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	first, err := s.Send(context.Background(), incidentMessage())
	if err != nil {
		t.Fatal(err)
	}
	reply := incidentMessage()
	reply.Thread = first.Thread
	if _, err := s.Send(context.Background(), reply); err != nil {
		t.Fatal(err)
	}
	if n := peer.Count(); n != 2 {
		t.Fatalf("peer got %d requests, want 2 (no chat.update without a summary)", n)
	}
}

// TestSender_Send_ReplyThread: a reply stays in its thread unless
// chat.update says the parent no longer exists (message_not_found) and
// nothing shows the reply in a thread; then the reply, which Slack posted
// at the top of the channel, is the new parent and the next message
// threads under it and edits it. An answer without thread_ts, or without
// the message, is not a sign of deletion: a Slack-compatible server may
// leave them out.
func TestSender_Send_ReplyThread(t *testing.T) {
	const gone = "the reply became a new parent"
	const failed = "slack parent update failed"
	tests := []struct {
		name      string
		omit      []string // fields the peer leaves out of chat.postMessage answers
		deleted   bool     // the parent is deleted before the reply
		update    string   // chat.update's scripted error ("": as Slack would answer)
		newParent bool
		logged    string // the warning logged ("": none)
	}{
		{name: "answer without thread_ts", omit: []string{"message.thread_ts"}},
		{name: "answer without the message", omit: []string{"message"}},
		{name: "parent deleted", deleted: true, newParent: true, logged: gone},
		{name: "parent deleted, answer without thread_ts", omit: []string{"message.thread_ts"}, deleted: true, newParent: true, logged: gone},
		{name: "parent deleted, answer without the message", omit: []string{"message"}, deleted: true, newParent: true, logged: gone},
		{name: "parent a placeholder that keeps its thread", update: "message_not_found", logged: failed},
		{name: "edit refused, answer without thread_ts", omit: []string{"message.thread_ts"}, update: "cant_update_message", logged: failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSlackPeer(t, channeltest.WithSlackOmit(tt.omit...),
				channeltest.WithSlackRespond(func(_ int, p channeltest.SlackPost) *channeltest.SlackResponse {
					if p.Method == "chat.update" && tt.update != "" {
						return channeltest.SlackError(tt.update)
					}
					return nil
				}))
			var logs bytes.Buffer
			s := newSender(t, peer, nil, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			ctx := context.Background()
			first, err := s.Send(ctx, incidentMessage())
			if err != nil {
				t.Fatal(err)
			}
			ch, parentTS, _ := strings.Cut(first.Thread, "/")
			if tt.deleted {
				peer.Delete(ch, parentTS)
			}
			reply := incidentMessage()
			reply.Key = "upd-10/sub-3/ops-slack"
			reply.Thread, reply.ThreadSummary = first.Thread, "MAJOR INC-42: referrals (monitoring)"
			rec, err := s.Send(ctx, reply)
			if err != nil {
				t.Fatalf("the reply failed: %v", err)
			}

			posts := peer.Posts()
			if len(posts) != 3 || posts[1].Method != "chat.postMessage" || posts[2].Method != "chat.update" {
				t.Fatalf("peer got %d requests, want post, reply, update: %+v", len(posts), posts)
			}
			r, u := posts[1], posts[2]
			if r.ThreadTS != parentTS || r.Threaded == tt.deleted {
				t.Errorf("reply: thread_ts %q threaded %v; want thread_ts %q, threaded %v", r.ThreadTS, r.Threaded, parentTS, !tt.deleted)
			}
			wantErr := tt.update
			if tt.deleted {
				wantErr = "message_not_found"
			}
			if u.TS != parentTS || u.Error != wantErr {
				t.Errorf("update: ts %q error %q; want ts %q error %q", u.TS, u.Error, parentTS, wantErr)
			}
			own := ch + "/" + r.RespTS
			want := first.Thread
			if tt.newParent {
				want = own
			}
			if rec.ProviderID != own || rec.Thread != want {
				t.Errorf("receipt %+v; want ProviderID %q, Thread %q", rec, own, want)
			}
			out := logs.String()
			if tt.logged == "" && out != "" || tt.logged != "" && !strings.Contains(out, tt.logged) {
				t.Errorf("log %q; want %q", out, tt.logged)
			}
			if tt.logged != "" && !strings.Contains(out, `"code":"`+wantErr+`"`) {
				t.Errorf("log %q does not give Slack's error %q", out, wantErr)
			}
			if !tt.newParent {
				return
			}
			// The next message threads under the new parent and edits it.
			next := reply
			next.Key, next.Thread = "upd-11/sub-3/ops-slack", rec.Thread
			rec2, err := s.Send(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			posts = peer.Posts()[3:]
			if len(posts) != 2 || posts[0].ThreadTS != r.RespTS || !posts[0].Threaded || posts[1].TS != r.RespTS || posts[1].Error != "" {
				t.Fatalf("after the new parent: %+v; want a reply under %s and its edit", posts, r.RespTS)
			}
			if rec2.Thread != rec.Thread {
				t.Errorf("next receipt %+v; want Thread %q", rec2, rec.Thread)
			}
		})
	}
}

// A reply without a summary to show is not followed by an edit, so
// nothing says whether its parent is still there: an answer without
// thread_ts is a reply in the thread.
func TestSender_Send_ReplyWithoutThreadTSNorSummary(t *testing.T) {
	peer := channeltest.NewSlackPeer(t, channeltest.WithSlackOmit("message.thread_ts"))
	s := newSender(t, peer, nil)
	first, err := s.Send(context.Background(), incidentMessage())
	if err != nil {
		t.Fatal(err)
	}
	reply := incidentMessage()
	reply.Thread = first.Thread
	rec, err := s.Send(context.Background(), reply)
	if err != nil {
		t.Fatal(err)
	}
	if n := peer.Count(); n != 2 || rec.Thread != first.Thread {
		t.Errorf("%d requests, receipt %+v; want 2 and Thread %q", n, rec, first.Thread)
	}
}

// A reply answered without a ts is still a reply in the thread, and the
// parent is still edited.
func TestSender_Send_ReplyAnsweredWithoutTS(t *testing.T) {
	peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(_ int, p channeltest.SlackPost) *channeltest.SlackResponse {
		if p.Method == "chat.postMessage" && p.ThreadTS != "" {
			return &channeltest.SlackResponse{JSON: map[string]any{"ok": true, "channel": p.Channel}}
		}
		return nil
	}))
	s := newSender(t, peer, nil)
	first, err := s.Send(context.Background(), incidentMessage())
	if err != nil {
		t.Fatal(err)
	}
	reply := incidentMessage()
	reply.Thread, reply.ThreadSummary = first.Thread, "still down"
	rec, err := s.Send(context.Background(), reply)
	if err != nil {
		t.Fatal(err)
	}
	posts := peer.Posts()
	if len(posts) != 3 || posts[2].Method != "chat.update" || posts[2].Error != "" {
		t.Fatalf("peer got %+v; want post, reply, update", posts)
	}
	if rec.ProviderID != "C0123ABCD" || rec.Thread != first.Thread {
		t.Errorf("receipt %+v; want ProviderID C0123ABCD and Thread %q", rec, first.Thread)
	}
}

func TestSender_Send_BadThreadReference(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	m := incidentMessage()
	m.Thread, m.ThreadSummary = "not-a-reference", "x"
	rec, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	p := peer.Posts()
	if len(p) != 1 || p[0].ThreadTS != "" || rec.Thread != rec.ProviderID {
		t.Fatalf("want a new parent, got %d requests, thread_ts %q, receipt %+v", len(p), p[0].ThreadTS, rec)
	}
}

func TestSender_Send_UpdateFailureIsNotDeliveryFailure(t *testing.T) {
	peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(_ int, p channeltest.SlackPost) *channeltest.SlackResponse {
		if p.Method == "chat.update" {
			return channeltest.SlackError("cant_update_message")
		}
		return nil
	}))
	var logs bytes.Buffer
	s := newSender(t, peer, nil, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	first, err := s.Send(context.Background(), incidentMessage())
	if err != nil {
		t.Fatal(err)
	}
	reply := incidentMessage()
	reply.Thread, reply.ThreadSummary = first.Thread, "mitigated"
	rec, err := s.Send(context.Background(), reply)
	if err != nil {
		t.Fatalf("a failed chat.update failed the delivery: %v", err)
	}
	if rec.ProviderID == "" || rec.Thread != first.Thread {
		t.Errorf("receipt = %+v", rec)
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, `"code":"cant_update_message"`) {
		t.Errorf("no warning with the code: %s", out)
	}
	if strings.Contains(out, peer.Token) {
		t.Errorf("log shows the token: %s", out)
	}
}

func TestSender_Send_LongTextSplit(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	var b strings.Builder
	for i := 0; b.Len() < 7500; i++ {
		b.WriteString("Line of rendered text about ambulance dispatch in Wales &amp; Scotland.\n")
	}
	m := incidentMessage()
	m.Text = strings.TrimSuffix(b.String(), "\n")
	if _, err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	p := peer.Posts()[0]
	if p.Error != "" {
		t.Fatalf("peer refused: %s", p.Error)
	}
	types := blockTypes(p)
	if len(types) != 5 || types[1] != "section" || types[3] != "section" {
		t.Fatalf("blocks = %v, want header, 3 sections, context", types)
	}
	texts := p.BlockTexts()
	joined := strings.Join(texts[1:4], "\n")
	if joined != m.Text {
		t.Errorf("sections do not add up to the text")
	}
	for _, sec := range texts[1:4] {
		if n := len([]rune(sec)); n > 3000 || !strings.HasSuffix(sec, ".") {
			t.Errorf("section of %d runes ends %q", n, sec[len(sec)-10:])
		}
	}
}

func TestSender_Send_Refused(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, nil)
	tests := []struct {
		name   string
		m      channels.Message
		reason channels.Reason
		code   string
	}{
		{"no text", channels.Message{Key: "k", Address: "C1"}, channels.ReasonRejected, "no_text"},
		{"no address", channels.Message{Key: "k", Text: "x"}, channels.ReasonBadAddress, ""},
		{"too long", channels.Message{Key: "k", Address: "C1", Text: strings.Repeat("word ", 40000)}, channels.ReasonRejected, "msg_too_long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), tt.m)
			reason, retry, _ := channels.Classify(err)
			if reason != tt.reason || retry || channels.Code(err) != tt.code {
				t.Fatalf("got %v (%s, retry %v, code %q)", err, reason, retry, channels.Code(err))
			}
		})
	}
	if n := peer.Count(); n != 0 {
		t.Fatalf("peer got %d requests for refused messages", n)
	}
}

func TestSender_Send_Webhook(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s, err := New("ops-hook", Config{WebhookURL: fields.Secret(peer.WebhookURL)})
	if err != nil {
		t.Fatal(err)
	}
	m := incidentMessage()
	m.Thread, m.ThreadSummary = "C0123ABCD/1700000000.000001", "ignored in webhook mode"
	rec, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	posts := peer.Posts()
	if len(posts) != 1 {
		t.Fatalf("peer got %d requests", len(posts))
	}
	p := posts[0]
	if p.Method != "webhook" || !strings.HasPrefix(p.ContentType, "application/json") || p.Status != http.StatusOK {
		t.Fatalf("peer got %s %q status %d", p.Method, p.ContentType, p.Status)
	}
	if p.ThreadTS != "" || p.UnfurlLinks != "false" || strings.Join(blockTypes(p), ",") != "header,section,context" {
		t.Errorf("webhook post: thread_ts %q unfurl %q blocks %v", p.ThreadTS, p.UnfurlLinks, blockTypes(p))
	}
	if strings.Contains(p.AllText(), "<!channel>") || !strings.HasPrefix(p.Text, "SEV1 &lt;!channel&gt;") {
		t.Errorf("webhook text = %q", p.Text)
	}
	if rec.ProviderID != "webhook" || rec.Thread != "" {
		t.Errorf("receipt = %+v", rec)
	}
}

func TestSender_Send_TokenFile(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	path := filepath.Join(t.TempDir(), "slack-token")
	if err := os.WriteFile(path, []byte(peer.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New("ops", Config{TokenFile: path, APIURL: strings.TrimSuffix(peer.URL, "/")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), incidentMessage()); err != nil {
		t.Fatal(err)
	}
	if p := peer.Posts()[0]; !p.Authorized {
		t.Fatal("the token from token_file was not accepted")
	}
}

type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestSender_Send_WithHTTPClient(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	ct := &countingTransport{}
	s := newSender(t, peer, nil, WithHTTPClient(&http.Client{Transport: ct}))
	if _, err := s.Send(context.Background(), incidentMessage()); err != nil {
		t.Fatal(err)
	}
	if ct.n.Load() != 1 || peer.Count() != 1 {
		t.Fatalf("transport saw %d requests, peer %d", ct.n.Load(), peer.Count())
	}
}

func BenchmarkSender_Send(b *testing.B) {
	peer := channeltest.NewSlackPeer(b)
	s, err := New("bench", Config{Token: fields.Secret(peer.Token), APIURL: peer.URL})
	if err != nil {
		b.Fatal(err)
	}
	m := incidentMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
