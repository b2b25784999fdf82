package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/crier-dev/crier/channels"
)

// A lane's breaker stops a channel from spending every recipient's
// attempts on a provider that is down or throttling. A 429, a run of
// temporary failures or a channel-wide failure (bad credentials) opens it:
// the lane claims nothing until the pause ends, deliveries already in hand
// go back to the queue for when it ends, and failures during the outage do
// not count against the recipients. When the pause ends one delivery is
// sent as a probe; its success closes the breaker, its failure opens it
// again for twice as long (up to a cap). Each change of state is logged
// once and reported to the lane observer (metrics).

// breakerState is where a lane's breaker is.
type breakerState int

const (
	closed  breakerState = iota // sending
	open                        // paused until the pause ends
	probing                     // the pause has ended: one delivery tests the channel
)

func (s breakerState) String() string {
	switch s {
	case open:
		return "paused"
	case probing:
		return "probing"
	}
	return "sending"
}

const (
	// tripAfter temporary failures in a row open the breaker.
	tripAfter = 5
)

// LaneObserver hears when a channel's lane changes state (metrics):
// "paused" (with the reason of the failure that paused it), "probing"
// (one message tests the channel) or "sending". An Observer that also
// implements it is told.
type LaneObserver interface {
	LaneState(channel, state, reason string)
}

// breaker is a lane's outage state. Its methods are safe for concurrent use.
type breaker struct {
	mu      sync.Mutex
	state   breakerState
	until   time.Time // end of the pause (open)
	fails   int       // temporary failures in a row
	pause   time.Duration
	reason  string    // why it opened
	since   time.Time // when the outage began
	pauses  int
	probe   bool          // a worker is sending the test message
	changed chan struct{} // closed and replaced at each change of state

	channel string
	log     *slog.Logger
	obs     LaneObserver
	// first and most bound the pause after temporary failures (a 429's
	// Retry-After or a channel-wide failure's channel_pause may be longer).
	first, most time.Duration
}

func newBreaker(channel string, p RetryPolicy, log *slog.Logger, obs LaneObserver) *breaker {
	return &breaker{channel: channel, log: log, obs: obs, changed: make(chan struct{}), first: p.OutagePause, most: p.OutagePauseMax}
}

// setState changes state and tells whoever waits; b.mu is held.
func (b *breaker) setState(s breakerState) {
	if s == b.state {
		return
	}
	b.state = s
	close(b.changed)
	b.changed = make(chan struct{})
	if b.obs != nil {
		b.obs.LaneState(b.channel, s.String(), b.reason)
	}
}

// pausedFor is how long the lane must still wait before sending. When a
// pause has just ended the breaker moves to probing and pausedFor is 0.
func (b *breaker) pausedFor(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != open {
		return 0
	}
	if now.Before(b.until) {
		return b.until.Sub(now)
	}
	b.setState(probing)
	b.log.Info("channel pause over: sending one message to test it", "channel", b.channel, "paused_for", now.Sub(b.since).Round(time.Second).String())
	return 0
}

// probing reports whether the lane is testing the channel with one
// delivery, and a channel that is closed at the next change of state.
func (b *breaker) probing() (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == probing, b.changed
}

// takeProbe makes the caller the one worker that sends the test message
// while the breaker is probing; false if another worker already is.
func (b *breaker) takeProbe() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != probing || b.probe {
		return false
	}
	b.probe = true
	return true
}

// probeDone says the test message has its outcome (or was not sent).
func (b *breaker) probeDone() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probe = false
}

// succeeded records an answer from the provider that is not a temporary
// failure (a message accepted, or refused for its recipient): the channel
// works.
func (b *breaker) succeeded(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails = 0
	if b.state == closed {
		return
	}
	b.log.Info("channel resumed", "channel", b.channel, "outage", now.Sub(b.since).Round(time.Second).String(), "reason", b.reason, "pauses", b.pauses)
	b.pause = 0
	b.setState(closed)
}

// failed records a failure of the channel rather than of one recipient:
// a temporary one (reason, with the provider's retryAfter), or a
// channel-wide one (wide, paused for widePause). It reports whether the
// lane is now in an outage, and when the pause ends: the failed delivery
// is then queued for that time without spending its attempt.
func (b *breaker) failed(now time.Time, reason channels.Reason, retryAfter time.Duration, wide bool, widePause time.Duration, detail string) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	switch {
	case b.state == open:
		// A send that was already in flight when the pause began.
		return true, b.until
	case wide, reason == channels.ReasonRateLimited, b.state == probing, b.fails >= tripAfter:
	default:
		return false, time.Time{}
	}
	var d time.Duration
	switch {
	case wide:
		d = widePause
	case b.pause == 0:
		d = b.first
	default:
		d = min(2*b.pause, b.most)
	}
	b.pause = d
	if retryAfter > d {
		d = retryAfter // the provider's Retry-After always holds
	}
	if b.state == closed {
		b.since = now
	}
	wasProbing := b.state == probing
	b.until = now.Add(d)
	b.reason = string(reason)
	b.pauses++
	why := "temporary failures in a row"
	switch {
	case wide:
		why = "the channel is misconfigured"
	case reason == channels.ReasonRateLimited:
		why = "the provider asked crier to slow down"
	case wasProbing:
		why = "the test message failed too"
	}
	level := slog.LevelWarn
	if wide {
		level = slog.LevelError
	}
	b.log.Log(context.Background(), level, "channel paused: "+why+"; recipients' attempts are not spent while it is", "channel", b.channel, "reason", string(reason),
		"failures", b.fails, "pause", d.String(), "until", b.until.UTC().Format(time.RFC3339), "err", detail)
	b.setState(open)
	return true, b.until
}
