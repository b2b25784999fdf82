package channels

import (
	"context"
	"errors"
	"net"
	"time"
)

// Classify reads a Send error: why it failed, whether a retry may help and
// the earliest a retry may be made. Errors built with Permanent or
// Temporary say so themselves; a timeout or a network error is temporary;
// anything else unclassified is treated as temporary with reason unknown,
// because losing a message is worse than trying it again within the
// dispatcher's bounded attempts.
func Classify(err error) (reason Reason, retryable bool, retryAfter time.Duration) {
	if err == nil {
		return "", false, 0
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Reason, ce.Retryable, ce.RetryAfter
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout, true, 0
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return ReasonTimeout, true, 0
		}
		return ReasonNetwork, true, 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return ReasonNetwork, true, 0
	}
	return ReasonUnknown, true, 0
}

// Code returns the provider error code carried by a classified error, or "".
func Code(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}
