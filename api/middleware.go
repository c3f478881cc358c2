package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wxflow/wxflow/engine"
)

type ctxKey int

const traceKey ctxKey = 0

// traceID returns the request's trace id (X-Request-Id, or a new one).
func traceID(ctx context.Context) string {
	id, _ := ctx.Value(traceKey).(string)
	return id
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// middleware adds a trace id, bounds the body, recovers panics and logs.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = engine.NewID("req")
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), traceKey, id))
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic", "path", r.URL.Path, "panic", p, "trace_id", id)
				writeError(sw, http.StatusInternalServerError, "internal", "internal error")
			}
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"took", time.Since(start), "trace_id", id)
			if s.cfg.Responses != nil {
				route := r.Pattern // set by the mux on this request
				if route == "" {
					route = "unmatched"
				}
				s.cfg.Responses.Response(route, sw.status)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
