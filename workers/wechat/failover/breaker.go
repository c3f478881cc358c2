package failover

import (
	"sync"
	"time"
)

// State is a host's breaker state.
type State int

// The breaker states.
const (
	// Closed: the host is in use.
	Closed State = iota
	// HalfOpen: the host rested its cool-down; one call (the probe) is trying it.
	HalfOpen
	// Open: the host failed and rests; calls go to the other host.
	Open
)

// String is the state's name in logs and metrics.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// verdict is what one attempt on a host tells of that host.
type verdict int

const (
	// answered: the host answered (any status below 500, or a 5xx the service signed).
	answered verdict = iota
	// failed: no answer in time, the connection cut without an answer, or an unsigned 5xx.
	failed
	// unreachable: no connection could be made (refused, unreachable, TLS handshake failure).
	unreachable
	// abandoned: the caller gave up; it says nothing of the host.
	abandoned
)

// breaker is one host's circuit breaker: closed → open after threshold
// failures in a row (at once when unreachable) → half-open after coolDown,
// where one probe call decides: closed on an answer, open again on a
// failure. It is safe for concurrent use.
type breaker struct {
	threshold int
	coolDown  time.Duration

	mu       sync.Mutex
	state    State
	failures int       // in a row, while closed
	openedAt time.Time // when it last opened
	probing  bool      // a probe is in flight (half-open)
	opened   uint64    // times it opened
}

// allow reports whether a call may go to the host at now, and whether that
// call is the probe (whose verdict decides a half-open breaker). A caller
// that is allowed must report the call's verdict to record.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true, false
	case Open:
		if now.Sub(b.openedAt) < b.coolDown {
			return false, false
		}
		b.state = HalfOpen
	}
	if b.probing {
		return false, false
	}
	b.probing = true
	return true, true
}

// available reports whether allow would let a call through at now, without
// taking the probe.
func (b *breaker) available(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		return now.Sub(b.openedAt) >= b.coolDown && !b.probing
	}
	return !b.probing
}

// record takes the verdict of a call allow let through, and returns the
// states before and after. Only the probe moves a half-open breaker; a call
// that began while the breaker was closed and ends after it opened changes
// nothing.
func (b *breaker) record(v verdict, probe bool, now time.Time) (from, to State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	from = b.state
	if probe {
		b.probing = false
		switch v {
		case answered:
			b.state, b.failures = Closed, 0
		case failed, unreachable:
			b.open(now)
		}
		return from, b.state
	}
	if b.state != Closed {
		return from, from
	}
	switch v {
	case answered:
		b.failures = 0
	case failed:
		if b.failures++; b.failures >= b.threshold {
			b.open(now)
		}
	case unreachable:
		b.open(now)
	}
	return from, b.state
}

func (b *breaker) open(now time.Time) {
	b.state, b.openedAt, b.failures = Open, now, 0
	b.opened++
}

// snapshot returns the state and how many times the breaker opened.
func (b *breaker) snapshot() (State, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.opened
}
