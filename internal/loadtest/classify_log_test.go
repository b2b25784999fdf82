package loadtest

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/channels/slack"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// logCase is one peer answer and the delivery-log row it must leave after
// one attempt.
type logCase struct {
	name       string
	status     string // delivery status after the attempt
	reason     string
	minRetryIn time.Duration // for a retry: next attempt no sooner than this
}

// attemptOnce plans one message to one subscriber, lets the dispatcher
// make a single attempt, and returns the log row.
func attemptOnce(t *testing.T, ch channels.Channel, sub subscribers.Subscriber) store.LogEntry {
	t.Helper()
	retry := dispatch.RetryPolicy{InitialBackoff: time.Second, MaxBackoff: time.Second, Deadline: time.Hour, ChannelPause: time.Minute}
	r := newRig(t, 0, ch, dispatch.Limits{Concurrency: 1}, retry)
	if err := r.st.Write(context.Background(), func(tx *store.Tx) error { return tx.UpsertSubscribers([]subscribers.Subscriber{sub}, "test") }); err != nil {
		t.Fatal(err)
	}
	out := r.send(t, "classify")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Only what is due now: a retry scheduled later stays queued.
	if err := r.disp.Drain(ctx, []int64{out.TriggerID}, start, nil); err != nil {
		t.Fatal(err)
	}
	var row store.LogEntry
	if err := r.st.Log(context.Background(), store.LogFilter{TriggerIDs: []int64{out.TriggerID}}, func(e *store.LogEntry) error { row = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	return row
}

func checkRow(t *testing.T, c logCase, row store.LogEntry, start time.Time) {
	t.Helper()
	if row.Status != c.status || row.Reason != c.reason {
		t.Fatalf("log row: status %s, reason %s (%s); want %s, %s", row.Status, row.Reason, row.Detail, c.status, c.reason)
	}
	if c.minRetryIn > 0 && row.NextAttempt.Before(start.Add(c.minRetryIn)) {
		t.Fatalf("next attempt at %s, want no sooner than %s after the attempt", row.NextAttempt, c.minRetryIn)
	}
}

var person = subscribers.Subscriber{ID: "dr-morgan", Name: "Dr Eleri Morgan", Roles: []string{"staff"}, Locale: "en", TimeZone: "Europe/London",
	Phone: "+447400123410", Email: "eleri.morgan@example.org", Slack: "C0RESPONSE1"}

// TestLog_Twilio_Classification: Twilio answers → the delivery log.
func TestLog_Twilio_Classification(t *testing.T) {
	tests := []struct {
		logCase
		resp *channeltest.TwilioResponse
	}{
		{logCase{"21211 invalid number", "failed", "bad_address", 0}, channeltest.TwilioError(400, 21211, "Invalid 'To' Phone Number")},
		{logCase{"21614 not a mobile", "failed", "bad_address", 0}, channeltest.TwilioError(400, 21614, "not a mobile number")},
		{logCase{"21610 unsubscribed", "failed", "opted_out", 0}, channeltest.TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")},
		{logCase{"20003 auth: channel paused, attempt not spent", "queued", "auth", 50 * time.Second}, channeltest.TwilioError(401, 20003, "Authenticate")},
		{logCase{"21606 bad sender: channel paused", "queued", "config", 50 * time.Second}, channeltest.TwilioError(400, 21606, "From is not SMS-capable")},
		{logCase{"429 Retry-After 7", "queued", "rate_limited", 7 * time.Second}, func() *channeltest.TwilioResponse {
			r := channeltest.TwilioError(429, 20429, "Too Many Requests")
			r.Header = http.Header{"Retry-After": {"7"}}
			return r
		}()},
		{logCase{"500", "queued", "server", 500 * time.Millisecond}, channeltest.TwilioError(500, 20500, "Internal Server Error")},
		{logCase{"HTML 503 from a proxy", "queued", "server", 500 * time.Millisecond}, &channeltest.TwilioResponse{Status: 503, Body: "<html>503</html>", ContentType: "text/html"}},
		// Twilio had the request, so the message may exist: an SMS lane's
		// in_doubt policy (hold) keeps it for an operator instead of resending.
		{logCase{"timeout after the request was sent", "unknown", "timeout", 0}, &channeltest.TwilioResponse{Hang: true}},
		{logCase{"connection dropped after the request was sent", "unknown", "network", 0}, &channeltest.TwilioResponse{Drop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse { return tt.resp }))
			s := twilioSender(t, peer)
			if tt.resp.Hang {
				var err error
				s, err = twilioSenderTimeout(peer, 300*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			checkRow(t, tt.logCase, attemptOnce(t, s, person), start)
		})
	}
}

// TestLog_Slack_Classification: Slack answers → the delivery log.
func TestLog_Slack_Classification(t *testing.T) {
	tests := []struct {
		logCase
		resp *channeltest.SlackResponse
	}{
		{logCase{"channel_not_found", "failed", "bad_address", 0}, channeltest.SlackError("channel_not_found")},
		{logCase{"not_in_channel", "failed", "bad_address", 0}, channeltest.SlackError("not_in_channel")},
		{logCase{"is_archived", "failed", "bad_address", 0}, channeltest.SlackError("is_archived")},
		{logCase{"invalid_auth: channel paused", "queued", "auth", 50 * time.Second}, channeltest.SlackError("invalid_auth")},
		{logCase{"429 Retry-After 7", "queued", "rate_limited", 7 * time.Second}, channeltest.SlackRateLimited("7")},
		{logCase{"500", "queued", "server", 500 * time.Millisecond}, &channeltest.SlackResponse{Status: 500, Body: "oops"}},
		{logCase{"HTML 503", "queued", "server", 500 * time.Millisecond}, &channeltest.SlackResponse{Status: 503, Body: "<html>503</html>"}},
		{logCase{"timeout", "queued", "timeout", 500 * time.Millisecond}, &channeltest.SlackResponse{Hang: true}},
		{logCase{"dropped connection", "queued", "network", 500 * time.Millisecond}, &channeltest.SlackResponse{Drop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(int, channeltest.SlackPost) *channeltest.SlackResponse { return tt.resp }))
			s, err := slack.New("slack", slack.Config{Token: fields.Secret(peer.Token), APIURL: peer.URL, Timeout: 300 * time.Millisecond, PerDestination: 100})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			checkRow(t, tt.logCase, attemptOnce(t, s, person), start)
		})
	}
}

// TestLog_SMTP_Classification: SMTP replies → the delivery log.
func TestLog_SMTP_Classification(t *testing.T) {
	tests := []struct {
		logCase
		hook func(channeltest.SMTPStage, string) error
	}{
		{logCase{"550 5.1.1 at RCPT", "failed", "bad_address", 0}, rcpt(channeltest.SMTPReply(550, "5.1.1", "no such user"))},
		{logCase{"553 at RCPT", "failed", "bad_address", 0}, rcpt(channeltest.SMTPReply(553, "5.1.3", "bad address syntax"))},
		{logCase{"554 at DATA", "failed", "rejected", 0}, data(channeltest.SMTPReply(554, "5.6.0", "content rejected"))},
		{logCase{"451 at RCPT", "queued", "server", 500 * time.Millisecond}, rcpt(channeltest.SMTPReply(451, "4.3.0", "try again later"))},
		{logCase{"dropped at DATA", "queued", "network", 500 * time.Millisecond}, data(channeltest.ErrSMTPDrop)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(tt.hook))
			s, err := email.New("email", email.Config{Host: peer.Host, Port: peer.Port, TLS: email.TLSNone, From: "briefings@example.org", Timeout: 2 * time.Second, PoolSize: 1},
				email.WithInstallation(installation))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			start := time.Now()
			checkRow(t, tt.logCase, attemptOnce(t, s, person), start)
		})
	}
}

func rcpt(err error) func(channeltest.SMTPStage, string) error {
	return func(stage channeltest.SMTPStage, _ string) error {
		if stage == channeltest.SMTPStageRcpt {
			return err
		}
		return nil
	}
}

func data(err error) func(channeltest.SMTPStage, string) error {
	return func(stage channeltest.SMTPStage, _ string) error {
		if stage == channeltest.SMTPStageData {
			return err
		}
		return nil
	}
}
