package api

import "github.com/wxflow/wxflow/engine"

// RoutePatterns lists the http.ServeMux patterns of each listener of s, as
// New registered them, for the test that holds openapi.json to them.
func RoutePatterns(s *Server) (internal, public []string) {
	return s.internalRoutes.patterns(), s.publicRoutes.patterns()
}

// StatusOf is the HTTP status an engine refusal code is answered with.
func StatusOf(code string) int { return statusOf(engine.RefusalCode(code)) }
