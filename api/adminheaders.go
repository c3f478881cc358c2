package api

import "net/http"

// adminCSP allows the admin pages nothing but their own origin: no inline
// script or style (the style sheet is served at /admin/admin.css), forms
// only to the admin page, and no framing by anyone (clickjacking).
const adminCSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// adminHeaders sets the headers every admin answer carries: no framing
// (X-Frame-Options for browsers without CSP frame-ancestors), no content
// sniffing, no Referer to other sites, and nothing kept in caches (pages
// show orders and openids).
func adminHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", adminCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
