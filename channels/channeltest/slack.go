package channeltest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// SlackPeer is an in-process server speaking the two Slack Web API methods
// crier uses (POST chat.postMessage and chat.update, form-encoded with the
// token in the body, as slack-go sends them) and an incoming webhook (JSON
// body) on 127.0.0.1. It checks the token, validates the message the way
// Slack does for the limits crier meets (text length, block limits), keeps
// track of posted messages so threads and edits behave (a reply to an
// unknown or deleted parent is posted unthreaded, an edit of one fails with
// message_not_found), answers with strictly increasing unique ts values and
// records every request. It is safe for concurrent requests.
type SlackPeer struct {
	// URL is the Web API base URL to configure as api_url, WITH the
	// trailing slash slack-go needs (http://127.0.0.1:port/).
	URL string
	// Token is the bot token the peer accepts.
	Token string
	// WebhookURL is the incoming-webhook URL the peer accepts; like a real
	// one it is a credential (its path is random per peer).
	WebhookURL string
	// WebhookChannel is the channel ID the webhook posts to, recorded as
	// the Channel of webhook posts.
	WebhookChannel string

	latency     time.Duration
	omit        map[string]bool // fields left out of chat.postMessage answers
	respond     func(n int, post SlackPost) *SlackResponse
	now         func() time.Time
	done        chan struct{}
	webhookPath string

	mu       sync.Mutex
	posts    []SlackPost
	seq      int
	messages map[string]string // "channel/ts" → the thread ts it belongs to ("" for a parent)
}

// SlackPost is one request as the peer received it.
type SlackPost struct {
	// N is the request's 1-based arrival order, Time when it arrived.
	N    int
	Time time.Time
	// Method is "chat.postMessage", "chat.update", "webhook", or the path's
	// method name for anything else.
	Method string
	// ContentType is the request's Content-Type header.
	ContentType string
	// Authorized reports whether the token in the form matched (webhook
	// posts carry no token and are authorised by their URL).
	Authorized bool
	// Form is the decoded form body without the token; treat it as read-only.
	Form url.Values
	// Channel, Text, ThreadTS and TS (the message edited, for chat.update)
	// are the fields crier sends, copied out.
	Channel, Text, ThreadTS, TS string
	// UnfurlLinks and UnfurlMedia are the raw values sent ("" if absent).
	UnfurlLinks, UnfurlMedia string
	// BlocksJSON is the blocks as sent; Blocks is the same, parsed (nil if
	// absent or not valid JSON).
	BlocksJSON string
	Blocks     []map[string]any
	// MetadataJSON is the metadata as sent; Metadata is the same, parsed.
	MetadataJSON string
	Metadata     *SlackMetadata
	// Status is the HTTP status answered (0 for a hang or a dropped
	// connection), Error the ok:false word or webhook error ("" on success),
	// RespTS the ts of the message created or edited ("" if none).
	Status        int
	Error, RespTS string
	// Threaded reports whether the peer filed a post under ThreadTS (false
	// when that parent was unknown, like Slack with a deleted parent).
	Threaded bool
}

// SlackMetadata is message metadata as Slack receives it.
type SlackMetadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// BlockTexts returns every "text" string inside the blocks (header,
// section and context texts), block by block. Use it rather than BlocksJSON for
// content assertions: Go's JSON encoder writes < and > as \u003c \u003e.
func (p SlackPost) BlockTexts() []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(t)) { // stable order
				if s, ok := t[k].(string); ok && k == "text" {
					out = append(out, s)
				} else {
					walk(t[k])
				}
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	for _, b := range p.Blocks {
		walk(b)
	}
	return out
}

// AllText is the top-level text and every block text, one a line: what a
// reader (or a mention parser) could see.
func (p SlackPost) AllText() string {
	return strings.Join(append([]string{p.Text}, p.BlockTexts()...), "\n")
}

// SlackResponse scripts one answer from the peer (see WithSlackRespond).
type SlackResponse struct {
	// Status is the HTTP status code (0 means 200).
	Status int
	// JSON, when not nil, is encoded as the body with Content-Type application/json.
	JSON any
	// Body is a raw body used when JSON is nil, such as a proxy's HTML 503 page.
	Body string
	// ContentType is sent with Body; default "text/html; charset=utf-8".
	ContentType string
	// Header holds extra response headers, for example Retry-After.
	Header http.Header
	// Hang makes the peer hold the request without answering until the
	// client gives up (or the test ends).
	Hang bool
	// Drop makes the peer close the connection without any answer.
	Drop bool
}

// SlackError is Slack's answer to a refused Web API call: HTTP 200 with
// {"ok":false,"error":word}.
func SlackError(word string) *SlackResponse {
	return &SlackResponse{Status: http.StatusOK, JSON: map[string]any{"ok": false, "error": word}}
}

// SlackRateLimited is Slack's 429 answer; retryAfter is the Retry-After
// header value ("" to leave the header out).
func SlackRateLimited(retryAfter string) *SlackResponse {
	r := SlackError("ratelimited")
	r.Status = http.StatusTooManyRequests
	if retryAfter != "" {
		r.Header = http.Header{"Retry-After": {retryAfter}}
	}
	return r
}

// SlackOption configures NewSlackPeer.
type SlackOption func(*SlackPeer)

// WithSlackLatency delays every answer by d, as a slow Slack would; the
// delay ends early when the client goes away.
func WithSlackLatency(d time.Duration) SlackOption {
	return func(p *SlackPeer) { p.latency = d }
}

// WithSlackRespond installs a hook that may script the answer to request n
// (1-based, authorised ones only); returning nil lets the peer answer as
// Slack would.
func WithSlackRespond(fn func(n int, post SlackPost) *SlackResponse) SlackOption {
	return func(p *SlackPeer) { p.respond = fn }
}

// WithSlackOmit makes chat.postMessage answer without fields that Slack
// sends but a Slack-compatible server (or a proxy) may leave out:
// "message.thread_ts" (the reply's thread, even when it was filed in one)
// or "message" (the whole message object, as slack-go's slacktest does).
// The peer still files and records the post as Slack would.
func WithSlackOmit(fields ...string) SlackOption {
	return func(p *SlackPeer) {
		if p.omit == nil {
			p.omit = map[string]bool{}
		}
		for _, f := range fields {
			p.omit[f] = true
		}
	}
}

// WithSlackClock sets the clock used for request times.
func WithSlackClock(now func() time.Time) SlackOption {
	return func(p *SlackPeer) { p.now = now }
}

// NewSlackPeer starts a peer on 127.0.0.1 that is closed when tb's test ends.
func NewSlackPeer(tb testing.TB, opts ...SlackOption) *SlackPeer {
	tb.Helper()
	p := &SlackPeer{
		Token:          "xoxb-1234-5678-" + slackRandom(12),
		WebhookChannel: "C0WEBHOOK1",
		now:            time.Now,
		done:           make(chan struct{}),
		webhookPath:    "/services/T0CRIER00/B0CRIER00/" + slackRandom(12),
		messages:       make(map[string]string),
	}
	for _, o := range opts {
		o(p)
	}
	srv := httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	p.URL = srv.URL + "/"
	p.WebhookURL = srv.URL + p.webhookPath
	tb.Cleanup(func() {
		close(p.done) // release hanging handlers first: Close waits for them
		srv.Close()
	})
	return p
}

func slackRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Posts returns a copy of every request received so far, in arrival order.
func (p *SlackPeer) Posts() []SlackPost {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SlackPost(nil), p.posts...)
}

// Count returns how many requests have arrived.
func (p *SlackPeer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.posts)
}

// Delete forgets a posted message, as if someone deleted it in Slack:
// replies to it then land unthreaded and edits fail with message_not_found.
func (p *SlackPeer) Delete(channel, ts string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.messages, channel+"/"+ts)
}

func (p *SlackPeer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := SlackPost{Time: p.now(), ContentType: r.Header.Get("Content-Type")}
	if r.URL.Path == p.webhookPath {
		rec.Method, rec.Authorized, rec.Channel = "webhook", true, p.WebhookChannel
		p.readWebhook(r, &rec)
	} else {
		rec.Method = strings.TrimPrefix(r.URL.Path, "/")
		_ = r.ParseForm()
		f := r.PostForm
		rec.Authorized = f.Get("token") != "" && f.Get("token") == p.Token
		rec.Form = url.Values{}
		for k, v := range f {
			if k != "token" {
				rec.Form[k] = v
			}
		}
		rec.Channel, rec.Text, rec.ThreadTS, rec.TS = f.Get("channel"), f.Get("text"), f.Get("thread_ts"), f.Get("ts")
		rec.UnfurlLinks, rec.UnfurlMedia = f.Get("unfurl_links"), f.Get("unfurl_media")
		rec.BlocksJSON, rec.MetadataJSON = f.Get("blocks"), f.Get("metadata")
		if rec.MetadataJSON != "" {
			var md SlackMetadata
			if json.Unmarshal([]byte(rec.MetadataJSON), &md) == nil {
				rec.Metadata = &md
			}
		}
	}
	if rec.BlocksJSON != "" {
		_ = json.Unmarshal([]byte(rec.BlocksJSON), &rec.Blocks)
	}
	hasToken := r.PostForm.Get("token") != ""

	p.mu.Lock()
	rec.N = len(p.posts) + 1
	p.posts = append(p.posts, rec)
	p.mu.Unlock()

	if !waitLatency(r, p.latency, p.done) {
		return
	}

	resp, result := p.answer(rec, r.Method, hasToken)
	status := p.write(w, r, resp)
	p.mu.Lock()
	got := &p.posts[rec.N-1]
	got.Status, got.Error, got.RespTS, got.Threaded = status, result.err, result.ts, result.threaded
	p.mu.Unlock()
}

// readWebhook decodes an incoming-webhook JSON body into rec.
func (p *SlackPeer) readWebhook(r *http.Request, rec *SlackPost) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var m struct {
		Text        string          `json:"text"`
		Blocks      json.RawMessage `json:"blocks"`
		ThreadTS    string          `json:"thread_ts"`
		UnfurlLinks *bool           `json:"unfurl_links"`
		UnfurlMedia *bool           `json:"unfurl_media"`
	}
	if json.Unmarshal(body, &m) != nil {
		rec.Error = "invalid_payload"
		return
	}
	rec.Text, rec.ThreadTS = m.Text, m.ThreadTS
	if len(m.Blocks) > 0 && string(m.Blocks) != "null" {
		rec.BlocksJSON = string(m.Blocks)
	}
	if m.UnfurlLinks != nil {
		rec.UnfurlLinks = fmt.Sprint(*m.UnfurlLinks)
	}
	if m.UnfurlMedia != nil {
		rec.UnfurlMedia = fmt.Sprint(*m.UnfurlMedia)
	}
}

// slackResult is what the peer did with a request, for the record.
type slackResult struct {
	err      string
	ts       string
	threaded bool
}

// answer decides the response the way Slack orders its checks: route,
// token, then the message. The hook runs after the token check so a test
// can script failures without re-implementing auth.
func (p *SlackPeer) answer(rec SlackPost, method string, hasToken bool) (*SlackResponse, slackResult) {
	if rec.Method != "webhook" && rec.Method != "chat.postMessage" && rec.Method != "chat.update" {
		return &SlackResponse{Status: http.StatusNotFound, JSON: map[string]any{"ok": false, "error": "unknown_method"}},
			slackResult{err: "unknown_method"}
	}
	if method != http.MethodPost {
		return &SlackResponse{Status: http.StatusMethodNotAllowed, Body: "method not allowed"}, slackResult{err: "method_not_allowed"}
	}
	if rec.Method != "webhook" {
		switch {
		case !hasToken:
			return SlackError("not_authed"), slackResult{err: "not_authed"}
		case !rec.Authorized:
			return SlackError("invalid_auth"), slackResult{err: "invalid_auth"}
		}
	}
	if p.respond != nil {
		if resp := p.respond(rec.N, rec); resp != nil {
			return resp, slackResult{err: slackErrorWord(resp)}
		}
	}
	if rec.Method == "webhook" {
		// Incoming webhooks answer in plain text: "ok", or an error word.
		word := rec.Error
		if word == "" {
			word = p.check(rec)
		}
		if word != "" {
			return &SlackResponse{Status: http.StatusBadRequest, Body: word, ContentType: "text/plain"}, slackResult{err: word}
		}
		return &SlackResponse{Status: http.StatusOK, Body: "ok"}, slackResult{}
	}
	if word := p.check(rec); word != "" {
		return SlackError(word), slackResult{err: word}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	msg := map[string]any{"type": "message", "subtype": "bot_message", "bot_id": "B0CRIER01", "text": rec.Text}
	if rec.Blocks != nil {
		msg["blocks"] = rec.Blocks
	}
	if rec.Method == "chat.update" {
		if _, ok := p.messages[rec.Channel+"/"+rec.TS]; !ok {
			return SlackError("message_not_found"), slackResult{err: "message_not_found"}
		}
		msg["ts"] = rec.TS
		return &SlackResponse{JSON: map[string]any{"ok": true, "channel": rec.Channel, "ts": rec.TS, "text": rec.Text, "message": msg}},
			slackResult{ts: rec.TS}
	}
	p.seq++
	ts := fmt.Sprintf("%d.%06d", 1700000000+p.seq/1000000, p.seq%1000000)
	res := slackResult{ts: ts}
	root := ""
	if rec.ThreadTS != "" {
		if parentRoot, ok := p.messages[rec.Channel+"/"+rec.ThreadTS]; ok {
			// A reply to a reply joins the parent's thread, as in Slack.
			root = rec.ThreadTS
			if parentRoot != "" {
				root = parentRoot
			}
			res.threaded = true
			msg["thread_ts"] = root
		}
	}
	p.messages[rec.Channel+"/"+ts] = root
	msg["ts"] = ts
	if p.omit["message.thread_ts"] {
		delete(msg, "thread_ts")
	}
	answer := map[string]any{"ok": true, "channel": rec.Channel, "ts": ts, "message": msg}
	if p.omit["message"] {
		delete(answer, "message")
	}
	return &SlackResponse{JSON: answer}, res
}

// check returns the error word Slack would answer for a malformed message,
// or "".
func (p *SlackPeer) check(rec SlackPost) string {
	switch {
	case rec.Method != "webhook" && rec.Channel == "":
		return "channel_not_found"
	case rec.Method == "chat.update" && rec.TS == "":
		return "message_not_found"
	case rec.BlocksJSON != "" && rec.Blocks == nil && rec.BlocksJSON != "[]":
		return "invalid_blocks"
	case rec.Text == "" && len(rec.Blocks) == 0:
		return "no_text"
	case utf8.RuneCountInString(rec.Text) > 40000:
		return "msg_too_long"
	case rec.MetadataJSON != "" && rec.Metadata == nil:
		return "invalid_metadata_format"
	case !slackBlocksValid(rec.Blocks):
		return "invalid_blocks"
	}
	return ""
}

// slackBlocksValid checks the Block Kit limits crier can run into: 50
// blocks, 3000 characters per text object, 150 plain_text characters in a
// header, 10 elements in a context block, no empty text.
func slackBlocksValid(blocks []map[string]any) bool {
	if len(blocks) > 50 {
		return false
	}
	textOK := func(v any, max int, plainOnly bool) bool {
		t, ok := v.(map[string]any)
		if !ok {
			return false
		}
		s, _ := t["text"].(string)
		typ, _ := t["type"].(string)
		if typ != "plain_text" && (plainOnly || typ != "mrkdwn") {
			return false
		}
		n := utf8.RuneCountInString(s)
		return n >= 1 && n <= max
	}
	for _, b := range blocks {
		switch b["type"] {
		case "header":
			if !textOK(b["text"], 150, true) {
				return false
			}
		case "section":
			if t, ok := b["text"]; ok && !textOK(t, 3000, false) {
				return false
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				return false
			}
			for _, e := range els {
				if m, _ := e.(map[string]any); m["type"] != "image" && !textOK(e, 3000, false) {
					return false
				}
			}
		}
	}
	return true
}

// slackErrorWord extracts the error word from a scripted response.
func slackErrorWord(resp *SlackResponse) string {
	if m, ok := resp.JSON.(map[string]any); ok {
		if w, ok := m["error"].(string); ok {
			return w
		}
	}
	if resp.Status != 0 && resp.Status != http.StatusOK {
		return http.StatusText(resp.Status)
	}
	return ""
}

// write sends resp and returns the status written (0 for hang or drop).
func (p *SlackPeer) write(w http.ResponseWriter, r *http.Request, resp *SlackResponse) int {
	return writeAnswer(w, r, p.done, answer{status: resp.Status, json: resp.JSON, body: resp.Body, contentType: resp.ContentType,
		header: resp.Header, hang: resp.Hang, drop: resp.Drop}, http.StatusOK, "application/json; charset=utf-8")
}
