package channeltest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

// TwilioPeer is an in-process server speaking Twilio's Messages API
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form in, JSON out)
// on 127.0.0.1. It checks Basic auth, validates the form the way Twilio
// does for the fields crier sends, answers 201 with a message resource
// (num_segments as a JSON string, like the real API) and records every
// request. It is safe for concurrent requests.
type TwilioPeer struct {
	// URL is the base URL to configure as api_base_url (http://127.0.0.1:port).
	URL string
	// AccountSID and AuthToken are the account credentials the peer accepts.
	AccountSID, AuthToken string
	// APIKeySID and APIKeySecret are API-key credentials the peer also
	// accepts for AccountSID.
	APIKeySID, APIKeySecret string
	// MessagingServiceSID is a well-formed Messaging Service SID to send with.
	MessagingServiceSID string
	// From is a well-formed sender number to send from.
	From string

	latency time.Duration
	respond func(n int, form url.Values) *TwilioResponse
	now     func() time.Time
	done    chan struct{}
	sidBase string

	mu   sync.Mutex
	reqs []TwilioRequest
	// msgs are the messages the peer created, oldest first: what its
	// Messages list answers from.
	msgs []twilioMessage
}

// TwilioRequest is one request as the peer received it.
type TwilioRequest struct {
	// N is the request's 1-based arrival order.
	N int
	// Time is when the request arrived.
	Time time.Time
	// Method and Path are the HTTP method and URL path.
	Method, Path string
	// PathAccountSID is the account SID in the path ("" if the path did not match).
	PathAccountSID string
	// User is the Basic-auth user (an account SID or an API key SID); the
	// password is checked but never recorded.
	User string
	// Authorized reports whether the credentials were accepted.
	Authorized bool
	// ContentType is the request's Content-Type header.
	ContentType string
	// Form is the decoded form body; treat it as read-only.
	Form url.Values
	// To, Body, From, MessagingServiceSid and StatusCallback are the form
	// fields crier sends, copied out for convenience.
	To, Body, From, MessagingServiceSid, StatusCallback string
	// Status is the HTTP status the peer answered with (0 for a hang or a
	// dropped connection).
	Status int
	// SID is the SID of the message the peer created, "" if none.
	SID string
}

// TwilioResponse scripts one answer from the peer (see WithTwilioRespond).
// A response with zero Status that neither hangs nor drops is ignored, and
// the peer answers as Twilio would.
type TwilioResponse struct {
	// Status is the HTTP status code.
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

// TwilioOption configures NewTwilioPeer.
type TwilioOption func(*TwilioPeer)

// WithTwilioLatency delays every answer by d, as a slow provider would; the
// delay ends early when the client goes away. A message is created when
// its request arrives, as Twilio creates it before answering: a client
// that gives up waiting has still sent it, and the Messages list shows it.
func WithTwilioLatency(d time.Duration) TwilioOption {
	return func(p *TwilioPeer) { p.latency = d }
}

// WithTwilioRespond installs a hook that may script the answer to
// authenticated request n (1-based) with the given form; returning nil
// lets the peer answer as Twilio would.
func WithTwilioRespond(fn func(n int, form url.Values) *TwilioResponse) TwilioOption {
	return func(p *TwilioPeer) { p.respond = fn }
}

// WithTwilioClock sets the clock used for request times and the dates in
// message resources.
func WithTwilioClock(now func() time.Time) TwilioOption {
	return func(p *TwilioPeer) { p.now = now }
}

// TwilioError builds a Twilio-shaped error answer, for example
// TwilioError(400, 21211, "The 'To' number is not a valid phone number.").
func TwilioError(status, code int, message string) *TwilioResponse {
	return &TwilioResponse{Status: status, JSON: twilioErrorBody{
		Code:     code,
		Message:  message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	}}
}

// NewTwilioPeer starts a peer on 127.0.0.1 that is closed when tb's test ends.
func NewTwilioPeer(tb testing.TB, opts ...TwilioOption) *TwilioPeer {
	tb.Helper()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	p := &TwilioPeer{
		AccountSID:          "AC0123456789abcdef0123456789abcdef",
		AuthToken:           "peerAuthToken0123456789abcdef0123",
		APIKeySID:           "SK0123456789abcdef0123456789abcdef",
		APIKeySecret:        "peerAPIKeySecret0123456789abcdef",
		MessagingServiceSID: "MG0123456789abcdef0123456789abcdef",
		From:                "+15005550006",
		now:                 time.Now,
		done:                make(chan struct{}),
		sidBase:             hex.EncodeToString(rnd[:]),
	}
	for _, o := range opts {
		o(p)
	}
	srv := httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	p.URL = srv.URL
	tb.Cleanup(func() {
		close(p.done) // release hanging handlers first: Close waits for them
		srv.Close()
	})
	return p
}

// Requests returns a copy of every request received so far, in arrival order.
func (p *TwilioPeer) Requests() []TwilioRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]TwilioRequest(nil), p.reqs...)
}

// Count returns how many requests have arrived.
func (p *TwilioPeer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

func (p *TwilioPeer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := TwilioRequest{
		Time:        p.now(),
		Method:      r.Method,
		Path:        r.URL.Path,
		ContentType: r.Header.Get("Content-Type"),
	}
	_ = r.ParseForm()
	rec.Form = r.PostForm
	rec.To, rec.Body, rec.From = r.PostForm.Get("To"), r.PostForm.Get("Body"), r.PostForm.Get("From")
	rec.MessagingServiceSid = r.PostForm.Get("MessagingServiceSid")
	rec.StatusCallback = r.PostForm.Get("StatusCallback")
	rec.PathAccountSID = twilioPathAccount(r.URL.Path)
	user, pass, ok := r.BasicAuth()
	rec.User = user
	rec.Authorized = ok && (user == p.AccountSID && pass == p.AuthToken ||
		user == p.APIKeySID && pass == p.APIKeySecret)

	p.mu.Lock()
	rec.N = len(p.reqs) + 1
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()

	resp, sid := p.answer(rec, r.Method, r.URL.Query())
	if resp.Status == http.StatusCreated {
		if m, ok := resp.JSON.(twilioMessage); ok {
			p.mu.Lock()
			p.msgs = append(p.msgs, m)
			p.mu.Unlock()
		}
	}
	if !waitLatency(r, p.latency, p.done) {
		return
	}
	status := p.write(w, r, resp)
	p.mu.Lock()
	p.reqs[rec.N-1].Status = status
	if status == http.StatusCreated {
		p.reqs[rec.N-1].SID = sid
	}
	p.mu.Unlock()
}

// answer decides the response the way Twilio orders its checks: route,
// authentication, then the form. The hook runs after authentication so a
// test can script failures without re-implementing auth.
func (p *TwilioPeer) answer(rec TwilioRequest, method string, query url.Values) (*TwilioResponse, string) {
	switch {
	case rec.PathAccountSID == "":
		return TwilioError(http.StatusNotFound, 20404, "The requested resource "+rec.Path+" was not found"), ""
	case method != http.MethodPost && method != http.MethodGet:
		return TwilioError(http.StatusMethodNotAllowed, 20004, "Method not allowed"), ""
	case !rec.Authorized:
		return TwilioError(http.StatusUnauthorized, 20003, "Authenticate"), ""
	case rec.PathAccountSID != p.AccountSID:
		return TwilioError(http.StatusNotFound, 20404, "The requested resource "+rec.Path+" was not found"), ""
	case method == http.MethodGet:
		return p.list(rec.Path, query), ""
	}
	if p.respond != nil {
		if resp := p.respond(rec.N, rec.Form); resp != nil && (resp.Status != 0 || resp.Hang || resp.Drop) {
			return resp, twilioSID(p.sidBase, rec.N)
		}
	}
	switch {
	case rec.To == "":
		return TwilioError(http.StatusBadRequest, 21604, "A 'To' phone number is required."), ""
	case rec.From == "" && rec.MessagingServiceSid == "":
		return TwilioError(http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message"), ""
	case rec.Body == "" && rec.Form.Get("MediaUrl") == "" && rec.Form.Get("ContentSid") == "":
		return TwilioError(http.StatusBadRequest, 21602, "Message body is required."), ""
	case len([]rune(rec.Body)) > 1600:
		return TwilioError(http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit."), ""
	}
	sid := twilioSID(p.sidBase, rec.N)
	return &TwilioResponse{Status: http.StatusCreated, JSON: p.message(rec, sid)}, sid
}

// write sends resp and returns the status written (0 for hang or drop).
func (p *TwilioPeer) write(w http.ResponseWriter, r *http.Request, resp *TwilioResponse) int {
	return writeAnswer(w, r, p.done, answer{status: resp.Status, json: resp.JSON, body: resp.Body, contentType: resp.ContentType,
		header: resp.Header, hang: resp.Hang, drop: resp.Drop}, http.StatusCreated, "application/json")
}

// Messages returns the messages the peer has created so far, oldest
// first: every POST it accepted, including those whose answer the client
// gave up waiting for.
func (p *TwilioPeer) Messages() []TwilioMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TwilioMessage, len(p.msgs))
	for i, m := range p.msgs {
		out[i] = TwilioMessage{SID: m.SID, To: m.To, Body: m.Body}
	}
	return out
}

// TwilioMessage is a message the peer created.
type TwilioMessage struct {
	SID, To, Body string
}

// Sends returns the message-creating requests (POSTs) received so far.
func (p *TwilioPeer) Sends() []TwilioRequest {
	var out []TwilioRequest
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

// list answers GET Messages.json: the account's messages, newest first,
// filtered by To and From, in pages of PageSize (default 50, at most
// 1000) addressed by Page and PageToken, with next_page_uri while more
// remain, as Twilio's list resource does.
func (p *TwilioPeer) list(path string, q url.Values) *TwilioResponse {
	size := 50
	if v := q.Get("PageSize"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &size); err != nil || size < 1 || size > 1000 {
			return TwilioError(http.StatusBadRequest, 20001, "Invalid PageSize")
		}
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &page); err != nil || page < 0 {
			return TwilioError(http.StatusBadRequest, 20001, "Invalid Page")
		}
	}
	to, from := q.Get("To"), q.Get("From")
	p.mu.Lock()
	var match []twilioMessage
	for i := len(p.msgs) - 1; i >= 0; i-- {
		m := p.msgs[i]
		if to != "" && m.To != to || from != "" && (m.From == nil || *m.From != from) {
			continue
		}
		match = append(match, m)
	}
	p.mu.Unlock()
	start := min(page*size, len(match))
	end := min(start+size, len(match))
	base := path + "?PageSize=" + fmt.Sprint(size)
	if to != "" {
		base += "&To=" + url.QueryEscape(to)
	}
	if from != "" {
		base += "&From=" + url.QueryEscape(from)
	}
	body := map[string]any{
		"messages": append([]twilioMessage{}, match[start:end]...), "page": page, "page_size": size, "start": start, "end": max(start, end-1),
		"uri": base + "&Page=" + fmt.Sprint(page), "first_page_uri": base + "&Page=0", "next_page_uri": nil, "previous_page_uri": nil,
	}
	if end < len(match) {
		body["next_page_uri"] = fmt.Sprintf("%s&Page=%d&PageToken=PA%s", base, page+1, match[end-1].SID)
	}
	if page > 0 {
		body["previous_page_uri"] = fmt.Sprintf("%s&Page=%d", base, page-1)
	}
	return &TwilioResponse{Status: http.StatusOK, JSON: body}
}

type twilioErrorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// twilioMessage is the message resource as the 2010 API returns it; the
// pointer fields are JSON null when empty, and the counts are strings.
type twilioMessage struct {
	SID                 string            `json:"sid"`
	AccountSID          string            `json:"account_sid"`
	To                  string            `json:"to"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	Body                string            `json:"body"`
	Status              string            `json:"status"`
	NumSegments         string            `json:"num_segments"`
	NumMedia            string            `json:"num_media"`
	Direction           string            `json:"direction"`
	APIVersion          string            `json:"api_version"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	DateCreated         string            `json:"date_created"`
	DateUpdated         string            `json:"date_updated"`
	DateSent            *string           `json:"date_sent"`
	URI                 string            `json:"uri"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
}

func (p *TwilioPeer) message(rec TwilioRequest, sid string) twilioMessage {
	now := p.now().UTC().Format(time.RFC1123Z)
	uri := "/2010-04-01/Accounts/" + p.AccountSID + "/Messages/" + sid
	m := twilioMessage{
		SID: sid, AccountSID: p.AccountSID, To: rec.To, Body: rec.Body,
		Status: "queued", NumSegments: fmt.Sprint(TwilioSegments(rec.Body)), NumMedia: "0",
		Direction: "outbound-api", APIVersion: "2010-04-01", PriceUnit: "USD",
		DateCreated: now, DateUpdated: now, URI: uri + ".json",
		SubresourceURIs: map[string]string{"media": uri + "/Media.json"},
	}
	if rec.From != "" {
		m.From = &rec.From
	}
	if rec.MessagingServiceSid != "" {
		m.MessagingServiceSID = &rec.MessagingServiceSid
		if rec.From == "" {
			m.Status = "accepted" // Twilio picks the sender later
		}
	}
	return m
}

// twilioPathAccount returns the account SID of a Messages.json path, or "".
func twilioPathAccount(path string) string {
	rest, ok := strings.CutPrefix(path, "/2010-04-01/Accounts/")
	if !ok {
		return ""
	}
	sid, ok := strings.CutSuffix(rest, "/Messages.json")
	if !ok || sid == "" || strings.Contains(sid, "/") {
		return ""
	}
	return sid
}

// twilioSID returns "SM" + 32 hex digits, unique per peer and request.
func twilioSID(base string, n int) string {
	return fmt.Sprintf("SM%s%016x", base, n)
}

// twilioGSM7 is the GSM 03.38 basic character set; twilioGSM7Ext holds the characters
// that take an escape plus one septet.
const (
	twilioGSM7    = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	twilioGSM7Ext = "\f^{}\\[~]|€"
)

// TwilioSegments approximates the SMS segment count Twilio reports: GSM-7
// (160 septets, 153 per part) when every character fits, otherwise UCS-2
// (70 UTF-16 units, 67 per part). It ignores Twilio's smart encoding.
func TwilioSegments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' '):
			septets++
		case strings.ContainsRune(twilioGSM7, r):
			septets++
		case strings.ContainsRune(twilioGSM7Ext, r):
			septets += 2
		default:
			gsm = false
		}
		if !gsm {
			break
		}
	}
	if gsm {
		return twilioParts(septets, 160, 153)
	}
	return twilioParts(len(utf16.Encode([]rune(body))), 70, 67)
}

func twilioParts(units, single, multi int) int {
	switch {
	case units == 0:
		return 1
	case units <= single:
		return 1
	default:
		return (units + multi - 1) / multi
	}
}
