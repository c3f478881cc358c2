package api

// RoutePatterns lists the http.ServeMux patterns of each listener of s, as
// New registered them, for the test that holds openapi.json to them.
func RoutePatterns(s *Server) (internal, public []string) {
	return s.internalRoutes.patterns(), s.publicRoutes.patterns()
}
