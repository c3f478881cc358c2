package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// Authentication of the shop API.
//
// Every /v1 request carries "Authorization: Bearer <key>", a key issued by
// `wxflow shop add` or `wxflow shop rotate` (wxs_<key id>_<secret>). A bearer
// key over TLS was chosen over signing each request with an HMAC: a shop
// needs no signing code (any HTTP client sends a header), there is no clock
// to keep in step and no replay window to tune, and a key is rotated by
// issuing a new one beside it and revoking the old one when it is no longer
// used. The price is that the key travels with every request, so the
// transport must be TLS anywhere but loopback (terminate it in front of
// wxflow, or keep the API on 127.0.0.1 behind a proxy).
//
// The store keeps only the key's HMAC-SHA256 under the server secret. A
// verified key is remembered in memory for Config.KeyCacheTTL (30 s), as the
// check costs a database read: a revoked key therefore stops working within
// that bound on every API process, not at once.

// defaultKeyCacheTTL bounds how long a revoked key may still be accepted.
const defaultKeyCacheTTL = 30 * time.Second

// maxCachedKeys bounds the cache's memory; past it, the cache starts over.
const maxCachedKeys = 10_000

// keyCache remembers verified keys, by their keyed hash, briefly.
type keyCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cachedShop
}

type cachedShop struct {
	shop  engine.Shop
	until time.Time
}

func newKeyCache(ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, now: now, m: map[string]cachedShop{}}
}

func (c *keyCache) get(hash string) (engine.Shop, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || !c.now().Before(e.until) {
		delete(c.m, hash)
		return engine.Shop{}, false
	}
	return e.shop, true
}

func (c *keyCache) put(hash string, shop engine.Shop) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= maxCachedKeys {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedKeys {
			clear(c.m)
		}
	}
	c.m[hash] = cachedShop{shop: shop, until: now.Add(c.ttl)}
}

// errNoKey: the request carries no bearer key at all.
var errNoKey = errors.New("no bearer key")

// authenticate returns the shop whose key the request carries.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (engine.Shop, error) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return engine.Shop{}, errNoKey
	}
	key = strings.TrimSpace(key)
	hash := engine.HashShopKey(s.cfg.Secret, key)
	if shop, ok := s.keys.get(hash); ok {
		return shop, nil
	}
	shop, err := s.cfg.Store.Authenticate(ctx, s.cfg.Secret, key)
	if err != nil {
		return shop, err
	}
	s.keys.put(hash, shop)
	return shop, nil
}

// shopHandler is a /v1 handler, called with the authenticated shop.
type shopHandler func(w http.ResponseWriter, r *http.Request, shop engine.Shop)

// shopOnly authenticates the request before h: 401 with WWW-Authenticate
// for a missing, malformed, unknown or revoked key (one answer for all).
func (s *Server) shopOnly(h shopHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := clientIP(r)
		if wait := s.badKeys.wait(addr, s.cfg.Now()); wait > 0 {
			tooMany(w, wait, "too many requests without a valid key from this address")
			return
		}
		shop, err := s.authenticate(r.Context(), r)
		if errors.Is(err, errNoKey) || errors.Is(err, engine.ErrBadKey) {
			s.badKeys.failed(addr, s.cfg.Now())
		}
		switch {
		case errors.Is(err, errNoKey):
			w.Header().Set("WWW-Authenticate", `Bearer realm="wxflow"`)
			writeError(w, http.StatusUnauthorized, codeUnauthenticated, "a shop API key is required: Authorization: Bearer <key>")
			return
		case errors.Is(err, engine.ErrBadKey):
			w.Header().Set("WWW-Authenticate", `Bearer realm="wxflow", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, codeUnauthenticated, "the shop API key is not valid")
			return
		case err != nil:
			s.log.Warn("authenticate", "err", err, "trace_id", traceID(r.Context()))
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
			return
		}
		if ok, wait := s.shopRates.allow(shop.Name); !ok {
			tooMany(w, wait, "too many requests for this shop")
			return
		}
		h(w, r, shop)
	}
}
