package demoshop

import (
	"crypto/subtle"
	"net/http"
	"sync"
)

// A buyer is a browser: a random id in an HttpOnly cookie. The shop shows an
// order, its pay parameters and its refund only to the buyer who made it, as
// a shop's session would; anyone else gets the 404 of an order that does not
// exist.

const (
	buyerCookie = "wxdemo_buyer"
	stateCookie = "wxdemo_oauth_state"
)

// buyer returns the browser's buyer id, giving it one when it has none.
func buyer(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(buyerCookie); err == nil && len(c.Value) == 32 && isHex(c.Value) {
		return c.Value
	}
	id := randomHex(16)
	http.SetCookie(w, &http.Cookie{Name: buyerCookie, Value: id, Path: "/demo/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: 7 * 24 * 3600})
	return id
}

// buyerOf returns the browser's buyer id, or "" when it has none.
func buyerOf(r *http.Request) string {
	if c, err := r.Cookie(buyerCookie); err == nil && len(c.Value) == 32 && isHex(c.Value) {
		return c.Value
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// owners remembers which buyer made which order, at most max orders (the
// oldest forgotten first). Safe for concurrent use.
type owners struct {
	mu    sync.Mutex
	by    map[string]string
	order []string
	max   int
}

func newOwners(max int) *owners { return &owners{by: map[string]string{}, max: max} }

// add records that buyer made the order. An order already recorded keeps its
// first buyer: a replayed create cannot hand an order to someone else.
func (o *owners) add(orderID, buyer string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.by[orderID]; ok {
		return prev == buyer
	}
	if len(o.order) >= o.max {
		delete(o.by, o.order[0])
		o.order = o.order[1:]
	}
	o.by[orderID] = buyer
	o.order = append(o.order, orderID)
	return true
}

// owns says whether buyer made the order.
func (o *owners) owns(orderID, buyer string) bool {
	if buyer == "" {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.by[orderID]
	return ok && subtle.ConstantTimeCompare([]byte(b), []byte(buyer)) == 1
}

// sameOrigin lets through only a POST the shop's own page sent (Origin, or
// else Sec-Fetch-Site, names this shop) with a JSON body: another site's
// page cannot make a buyer's browser refund or order.
func (s *Shop) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		switch {
		case origin != "" && origin != selfOrigin(r),
			origin == "" && r.Header.Get("Sec-Fetch-Site") != "same-origin":
			writeError(w, http.StatusForbidden, "forbidden", "only the shop's own pages may ask this")
			return
		case r.Header.Get("Content-Type") != "application/json":
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		h(w, r)
	}
}

// selfOrigin is the origin the browser reached the shop at.
func selfOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
