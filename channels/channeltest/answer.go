package channeltest

import (
	"encoding/json"
	"net/http"
	"time"
)

// answer is a scripted HTTP answer, the common shape of TwilioResponse and
// SlackResponse.
type answer struct {
	status      int
	json        any
	body        string
	contentType string
	header      http.Header
	hang, drop  bool
}

// writeAnswer sends a and returns the status written (0 for a hang or a
// dropped connection). A hang lasts until the client gives up or done is
// closed; defStatus and jsonType fill what a leaves empty.
func writeAnswer(w http.ResponseWriter, r *http.Request, done <-chan struct{}, a answer, defStatus int, jsonType string) int {
	switch {
	case a.drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return 0
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without a response
	case a.hang:
		select {
		case <-r.Context().Done():
		case <-done:
		}
		return 0
	}
	for k, vs := range a.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := a.status
	if status == 0 {
		status = defStatus
	}
	body, ct := []byte(a.body), a.contentType
	if a.json != nil {
		b, err := json.Marshal(a.json)
		if err != nil {
			http.Error(w, "peer: cannot encode scripted JSON: "+err.Error(), http.StatusInternalServerError)
			return http.StatusInternalServerError
		}
		body, ct = b, jsonType
	}
	if ct == "" {
		ct = "text/html; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// waitLatency holds a request for d, as a slow provider would; false when
// the client gave up or the peer is closing first.
func waitLatency(r *http.Request, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-done:
	}
	return false
}
