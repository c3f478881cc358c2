package openapitest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// Proxy serves a reverse proxy to target (a base URL) whose every exchange
// is checked, until tb ends, and returns its URL: for clients a test cannot
// give a transport of its own (internal/demo's). An exchange that does not
// match the document is answered 502 and recorded for the end of the test.
func (c *Checker) Proxy(tb testing.TB, target string) string {
	tb.Helper()
	to, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Host = to.Host
		},
		Transport: c.Transport(nil),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	return srv.URL
}
