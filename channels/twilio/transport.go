package twilio

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxBody bounds how much of a response is kept. A message resource is
// about 1 KiB and an error about 200 bytes; anything far larger is not
// Twilio talking.
const maxBody = 1 << 20

// maxRetryAfter (seconds) only keeps an absurd Retry-After from overflowing
// time.Duration; the dispatcher's deadline decides what is too long.
const maxRetryAfter = 7 * 24 * 3600

// attempt is the http.RoundTripper for one Send. twilio-go builds its
// requests with context.Background() and drops the response headers and
// status of failed calls, so each Send gets its own attempt that
//
//   - sends the request to the configured API base (twilio-go hard-codes
//     https://api.twilio.com and has no option for it),
//   - runs it under Send's context as well as the http.Client's timeout,
//   - records the HTTP status and Retry-After header, and
//   - reads the whole body into memory and closes the connection's body.
//
// The last point matters beyond classification: twilio-go never closes the
// body of an error response, which would otherwise keep the connection
// busy and out of the pool.
type attempt struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper

	// Written by RoundTrip, read by Send after CreateMessage returns; the
	// library makes exactly one request per call, on the calling goroutine.
	status     int
	retryAfter string
	body       []byte
	readErr    error

	// wrote is set once the request has been written to the connection
	// (by net/http's writer goroutine, hence atomic). A failure before
	// that point certainly sent nothing; after it, Twilio may have the
	// message. The error text says which.
	wrote atomic.Bool
}

func (a *attempt) RoundTrip(req *http.Request) (*http.Response, error) {
	// Cancel when either Send's ctx or the request's own context (which
	// carries http.Client.Timeout) ends. The body is read before return,
	// so cancelling on return cuts nothing short.
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	stop := context.AfterFunc(req.Context(), cancel)
	defer stop()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				a.wrote.Store(true)
			}
		},
	})

	out := req.Clone(ctx)
	out.URL.Scheme = a.base.Scheme
	out.URL.Host = a.base.Host
	out.Host = ""
	if p := strings.TrimSuffix(a.base.Path, "/"); p != "" {
		out.URL.Path = p + out.URL.Path
		out.URL.RawPath = ""
	}

	resp, err := a.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	a.status = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After")
	a.body, a.readErr = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	// Hand the library what arrived even if the read broke off: after a
	// 2xx the message exists at Twilio whatever the body says, and after
	// an error status the status alone classifies it.
	resp.Body = io.NopCloser(bytes.NewReader(a.body))
	resp.ContentLength = int64(len(a.body))
	return resp, nil
}

// retryAfterDelay parses a Retry-After value (delay-seconds or an HTTP
// date) into a wait from now; 0 when absent, unparsable or in the past.
func retryAfterDelay(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, maxRetryAfter)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
