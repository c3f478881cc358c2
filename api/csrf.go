package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// csrfField names the hidden field every form of the admin page carries.
const csrfField = "csrf"

// csrfToken is the token a session's forms carry: an HMAC keyed by the
// session id. Another site cannot compute it (the id is in an HttpOnly
// cookie it cannot read), every api process computes the same one without
// storing it, and it dies with the session. It is not the session id, and
// the id cannot be recovered from it, so a token seen in a page is no cookie.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("wxflow admin form"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK says whether got is the session's token (in constant time).
func csrfOK(sessionID, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(csrfToken(sessionID)))
}

// errCrossOrigin is a form posted from a page that is not the admin page's.
var errCrossOrigin = errors.New("the form comes from another origin")

// originOf is scheme://host[:port] of a URL, lower-cased; "" when it has none.
func originOf(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// ownOrigin is the origin the request was sent to, as the browser sees it
// when it talks to this process directly.
func ownOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.ToLower(scheme + "://" + r.Host)
}

// checkOrigin refuses a form posted from any origin but the admin page's
// own: the request's own origin or one of allowed (the public and internal
// URLs). SameSite alone let a page on another port of the same host post
// forms with the cookie. A POST without Origin (old browsers, some privacy
// settings) is judged by its Referer when it carries a session; a sign-in
// with neither is let through, since it proves a token by itself.
func checkOrigin(r *http.Request, allowed []string, withSession bool) error {
	ok := func(origin string) bool {
		if origin == "" {
			return false
		}
		if origin == ownOrigin(r) {
			return true
		}
		for _, a := range allowed {
			if origin == a {
				return true
			}
		}
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		if o == "null" || !ok(originOf(o)) {
			return errCrossOrigin
		}
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		if !ok(originOf(ref)) {
			return errCrossOrigin
		}
		return nil
	}
	if withSession {
		return errCrossOrigin
	}
	return nil
}
