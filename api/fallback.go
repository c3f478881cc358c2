package api

import (
	"net/http"
)

// jsonFallback answers what the mux itself would answer in plain text, an
// unknown route (404) or a known route with another method (405, with its
// Allow header), in the API's one error shape.
func jsonFallback(m *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := m.Handler(r); pattern != "" {
			m.ServeHTTP(w, r)
			return
		}
		rec := &statusOnly{header: http.Header{}}
		m.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		switch rec.status {
		case http.StatusMethodNotAllowed:
			writeError(w, http.StatusMethodNotAllowed, codeMethod, "the method is not allowed here; see Allow")
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, codeNotFound, reasonNoSuchResource)
		default: // a redirect the mux makes (a path cleaned, a trailing slash)
			for k, v := range rec.header {
				if k != "Content-Type" && k != "Content-Length" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.status)
		}
	})
}

// statusOnly records the mux's own answer: its headers and status, not its body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
