package dispatch

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

// RetryPolicy bounds how long and how often a delivery is tried.
type RetryPolicy struct {
	// MaxAttempts is the most sends one delivery gets (default 12: with
	// the default backoff, at least 30 minutes of a recipient's own
	// temporary failures; an outage of the whole channel pauses it
	// instead and spends no attempts).
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait after the first temporary failure (default 10s).
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the exponential wait (default 10m).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Deadline is how long after planning a delivery may still be sent
	// (default 6h); after it the delivery is expired, not sent late.
	Deadline time.Duration `yaml:"deadline"`
	// ChannelPause is how long a channel rests after a channel-wide
	// failure (bad credentials, a sender that cannot send) before it is
	// tried again (default 1m). Recipients' attempts are not spent on it.
	ChannelPause time.Duration `yaml:"channel_pause"`
	// OutagePause is how long a channel rests after a run of temporary
	// failures or a 429 (default 5s, or the provider's Retry-After if
	// longer); each failed test message after it doubles the rest, up to
	// OutagePauseMax (default 2m). Recipients' attempts are not spent
	// while the channel rests.
	OutagePause    time.Duration `yaml:"outage_pause"`
	OutagePauseMax time.Duration `yaml:"outage_pause_max"`
	// ReconcileAfter is how long after an in-doubt request (its answer
	// never came) a channel that can ask its provider (Twilio) concludes
	// from the provider's records that the message was never created, and
	// sends it again (default 2m). The provider is first asked after an
	// eighth of it, at most 15s.
	ReconcileAfter time.Duration `yaml:"reconcile_after"`
}

// Defaults fills zero fields.
func (p *RetryPolicy) Defaults() {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 12
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = 10 * time.Second
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = 10 * time.Minute
	}
	if p.Deadline == 0 {
		p.Deadline = 6 * time.Hour
	}
	if p.ChannelPause == 0 {
		p.ChannelPause = time.Minute
	}
	if p.OutagePause == 0 {
		p.OutagePause = 5 * time.Second
	}
	if p.OutagePauseMax == 0 {
		p.OutagePauseMax = max(2*time.Minute, p.OutagePause)
	}
	if p.ReconcileAfter == 0 {
		p.ReconcileAfter = 2 * time.Minute
	}
}

// Validate reports every problem with p (after Defaults).
func (p RetryPolicy) Validate() fields.List {
	var l fields.List
	if p.MaxAttempts < 1 || p.MaxAttempts > 100 {
		l.Add("max_attempts", strconv.Itoa(p.MaxAttempts), "must be between 1 and 100")
	}
	if p.InitialBackoff < 0 {
		l.Add("initial_backoff", p.InitialBackoff.String(), "must not be negative")
	}
	if p.MaxBackoff < p.InitialBackoff {
		l.Add("max_backoff", p.MaxBackoff.String(), "must be at least initial_backoff (%s)", p.InitialBackoff)
	}
	if p.Deadline < time.Minute {
		l.Add("deadline", p.Deadline.String(), "must be at least 1m")
	}
	if p.ChannelPause < time.Second {
		l.Add("channel_pause", p.ChannelPause.String(), "must be at least 1s")
	}
	if p.OutagePause <= 0 {
		l.Add("outage_pause", p.OutagePause.String(), "must be positive, like 5s")
	}
	if p.ReconcileAfter < time.Second {
		l.Add("reconcile_after", p.ReconcileAfter.String(), "must be at least 1s; the provider needs time to record a message")
	}
	if p.OutagePauseMax < p.OutagePause {
		l.Add("outage_pause_max", p.OutagePauseMax.String(), "must be at least outage_pause (%s)", p.OutagePause)
	}
	return l
}

// Backoff is the wait before attempt number attempt+1 after attempt
// failed temporarily: exponential from InitialBackoff, capped at
// MaxBackoff, with "equal jitter" (half fixed, half random) so that a
// burst of failures does not retry in lockstep, and never sooner than the
// provider's retryAfter.
func (p RetryPolicy) Backoff(attempt int, retryAfter time.Duration, rnd func(int64) int64) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	if rnd == nil {
		rnd = rand.Int64N
	}
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rnd(half+1))
	}
	if d < retryAfter {
		d = retryAfter
	}
	return d
}
