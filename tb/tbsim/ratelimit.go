package tbsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// bucket is one "capacity:seconds" window with greedy refill, as bucket4j's
// Bandwidth.simple used by ThingsBoard's TbRateLimits.
type bucket struct {
	capacity float64
	per      time.Duration
	tokens   float64
	last     time.Time
}

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.tokens, b.last = b.capacity, now
		return
	}
	el := now.Sub(b.last)
	if el <= 0 {
		return
	}
	b.tokens = min(b.capacity, b.tokens+b.capacity*float64(el)/float64(b.per))
	b.last = now
}

// limiter is one rate-limit string: all windows must allow a consumption.
type limiter []*bucket

func parseLimiter(spec string) (limiter, error) {
	var l limiter
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, sec, ok := strings.Cut(part, ":")
		capacity, err1 := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		seconds, err2 := strconv.ParseInt(strings.TrimSpace(sec), 10, 64)
		if !ok || err1 != nil || err2 != nil || capacity <= 0 || seconds <= 0 {
			return nil, fmt.Errorf("rate limit %q: want capacity:seconds", part)
		}
		l = append(l, &bucket{capacity: float64(capacity), per: time.Duration(seconds) * time.Second})
	}
	return l, nil
}

func (l limiter) tryConsume(now time.Time, n int) bool {
	if n <= 0 {
		return true
	}
	for _, b := range l {
		b.refill(now)
		if b.tokens < float64(n) {
			return false
		}
	}
	for _, b := range l {
		b.tokens -= float64(n)
	}
	return true
}

// limiterSet holds a device's three limits.
type limiterSet struct {
	messages, telemetry, points limiter
	errs                        []error
}

func newLimiterSet(l RateLimits) *limiterSet {
	ls := &limiterSet{}
	var err error
	if ls.messages, err = parseLimiter(l.Messages); err != nil {
		ls.errs = append(ls.errs, err)
	}
	if ls.telemetry, err = parseLimiter(l.TelemetryMessages); err != nil {
		ls.errs = append(ls.errs, err)
	}
	if ls.points, err = parseLimiter(l.TelemetryDataPoints); err != nil {
		ls.errs = append(ls.errs, err)
	}
	return ls
}

// allow is DefaultTransportRateLimitService.checkEntityRateLimit: a message
// carrying data points (telemetry, client attributes) takes one telemetry
// message and its data points, any other message (attribute request, RPC,
// claim, session open or close, subscription) one regular message; false
// means a limit is exceeded.
func (ls *limiterSet) allow(now time.Time, points int) bool {
	if ls == nil {
		return true
	}
	if points > 0 {
		return ls.telemetry.tryConsume(now, 1) && ls.points.tryConsume(now, points)
	}
	return ls.messages.tryConsume(now, 1)
}

// validateRateLimits reports a malformed window in l.
func validateRateLimits(l RateLimits) error {
	return errors.Join(newLimiterSet(l).errs...)
}
