package api

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Edges bound what a client can hold of a listener: how long it may take
// to send a request, how big its headers may be, how many connections it
// may keep open, and how often it may ask. Zero fields take the defaults of
// [DefaultEdges]. The same values serve the public and the internal
// listener, but for the rate (Config.InternalRate on the internal one).
type Edges struct {
	// ReadHeaderTimeout bounds the headers (5 s): a slow-header client lets
	// go of its connection then.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, body included (15 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds the answer (30 s: a create waits up to the reply timeout).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection unused this long (60 s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (64 KiB; Go's default is 1 MB).
	MaxHeaderBytes int
	// MaxConns bounds the open connections of one listener (1024); past it,
	// new ones wait in the kernel's queue until one closes.
	MaxConns int
	// MaxConnsPerIP bounds one client address's open connections (64); past
	// it, a new one is closed at once, so one client cannot take every slot.
	MaxConnsPerIP int
	// Rate and Burst are the requests per second one client IP may make of
	// the public listener (100/s, bursts of 200). A client over it gets 429
	// with Retry-After (WeChat sends a refused notification again later).
	Rate  rate.Limit
	Burst int
}

// DefaultEdges are the limits a listener has when nothing else is set.
func DefaultEdges() Edges {
	return Edges{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10, MaxConns: 1024, MaxConnsPerIP: 64, Rate: 100, Burst: 200}
}

// withDefaults fills the zero fields from DefaultEdges.
func (e Edges) withDefaults() Edges {
	d := DefaultEdges()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&e.ReadHeaderTimeout, d.ReadHeaderTimeout)
	fill(&e.ReadTimeout, d.ReadTimeout)
	fill(&e.WriteTimeout, d.WriteTimeout)
	fill(&e.IdleTimeout, d.IdleTimeout)
	if e.MaxHeaderBytes == 0 {
		e.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if e.MaxConns == 0 {
		e.MaxConns = d.MaxConns
	}
	if e.MaxConnsPerIP == 0 {
		e.MaxConnsPerIP = d.MaxConnsPerIP
	}
	if e.Rate == 0 {
		e.Rate, e.Burst = d.Rate, d.Burst
	}
	if e.Burst == 0 {
		e.Burst = max(1, int(e.Rate))
	}
	return e
}

// limitListener holds a listener to MaxConns open connections in all and
// MaxConnsPerIP from one address. It is safe for concurrent use.
type limitListener struct {
	net.Listener
	slots chan struct{}
	perIP int

	mu   sync.Mutex
	open map[string]int
}

func newLimitListener(ln net.Listener, e Edges) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, e.MaxConns), perIP: e.MaxConnsPerIP, open: map[string]int{}}
}

// Accept waits for a free slot, then for a connection; a connection from an
// address that holds its share already is closed at once.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.slots <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		l.mu.Lock()
		if l.open[ip] >= l.perIP {
			l.mu.Unlock()
			<-l.slots
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.mu.Unlock()
	<-l.slots
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// hostOf is a remote address without its port.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// keyedLimiter is a token bucket per key (a client IP, a shop). Buckets
// unused for a while are dropped, so a flood of new keys costs memory only
// for as long as it lasts. It is safe for concurrent use.
type keyedLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxBuckets bounds the limiter's memory whatever the keys: past it, idle
// buckets are swept at once, and when none is idle a new key shares one
// overflow bucket.
const maxBuckets = 100_000

func newKeyedLimiter(r rate.Limit, burst int, now func() time.Time) *keyedLimiter {
	return &keyedLimiter{rate: r, burst: burst, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token of key's bucket; when there is none it returns how
// long until there will be.
func (k *keyedLimiter) allow(key string) (bool, time.Duration) {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.swept) > time.Minute || len(k.buckets) >= maxBuckets {
		for key, b := range k.buckets {
			if now.Sub(b.seen) > time.Minute {
				delete(k.buckets, key)
			}
		}
		k.swept = now
	}
	b, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= maxBuckets {
			key = "\x00overflow"
			b = k.buckets[key]
		}
		if b == nil {
			b = &bucket{lim: rate.NewLimiter(k.rate, k.burst)}
			k.buckets[key] = b
		}
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// rateLimited answers 429 with Retry-After to a caller over its rate;
// keyOf names the caller.
func rateLimited(l *keyedLimiter, keyOf func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := l.allow(keyOf(r)); !ok {
			tooMany(w, wait, "too many requests")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tooMany answers 429: slow down, and when to try again.
func tooMany(w http.ResponseWriter, wait time.Duration, what string) {
	retryAfter(w, wait)
	writeError(w, http.StatusTooManyRequests, "rate_limited", what+": slow down and retry after the Retry-After seconds")
}

// clientIP is the request's peer address (never a forwarded header: a
// client could set those; behind a proxy, limit at the proxy).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errNoListener is returned by Run when it is given nothing to serve on.
var errNoListener = errors.New("api: no listener to serve on")
