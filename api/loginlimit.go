package api

import (
	"math"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed sign-ins a client may make: loginBurst at once, then one every
// loginEvery (5 a minute). Only failures count: an admin who signs in right
// is never slowed down.
const (
	loginBurst = 5
	loginEvery = time.Minute / loginBurst
	// badKeyBurst and badKeyEvery are the shop keys an address may present
	// that are no key at all (100 at once, then 20 a second): each costs a
	// database read, and no valid key is found by trying.
	badKeyBurst = 100
	badKeyEvery = time.Second / 20
	// loginClients bounds the clients remembered; past it, the ones whose
	// allowance is whole again are forgotten, and if none is, new clients
	// share one allowance (overflowClient) rather than growing the map.
	loginClients   = 4096
	overflowClient = "overflow"
)

// loginLimiter slows down guessing, per client address and per api process
// (N processes let a client fail N times as often): of admin tokens, and of
// shop keys. Only failures count. The address is the connection's:
// X-Forwarded-For is anyone's to write, so behind a proxy every client
// shares the proxy's allowance.
type loginLimiter struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
	every   time.Duration
	burst   int
}

// newLoginLimiter allows burst failures at once, then one every every.
func newLoginLimiter(every time.Duration, burst int) *loginLimiter {
	return &loginLimiter{clients: map[string]*rate.Limiter{}, every: every, burst: burst}
}

// clientKey is who an allowance belongs to: the IPv4 address, or the /64 of
// an IPv6 one (one host usually holds a whole /64).
func clientKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil || a.To4() != nil {
		return ip
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// wait says how long ip must wait before its next attempt; 0 when it may
// try now.
func (l *loginLimiter) wait(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[clientKey(ip)]
	if !ok {
		lim, ok = l.clients[overflowClient]
	}
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) * float64(l.every)))
}

// failed counts one failed attempt of ip.
func (l *loginLimiter) failed(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := clientKey(ip)
	if _, ok := l.clients[key]; !ok && len(l.clients) >= loginClients {
		for k, v := range l.clients {
			if v.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
		if len(l.clients) >= loginClients {
			key = overflowClient
		}
	}
	lim, ok := l.clients[key]
	if !ok {
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.clients[key] = lim
	}
	lim.AllowN(now, 1)
}
