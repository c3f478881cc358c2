package api

import (
	"net/http"
	"strings"
)

// routeTable is one listener's endpoints, listed once: New registers them
// on the listener's mux, and the OpenAPI test compares them with
// openapi.json (an http.ServeMux cannot list its patterns). Handle and
// HandleFunc take http.ServeMux patterns ("POST /v1/orders"), so a route is
// added as it would be to a mux.
type routeTable struct {
	routes []route
}

// route is one endpoint: the method ("" for any) and path of an
// http.ServeMux pattern, and its handler.
type route struct {
	method, path string
	handler      http.Handler
}

// pattern is the route's http.ServeMux pattern.
func (rt route) pattern() string {
	if rt.method == "" {
		return rt.path
	}
	return rt.method + " " + rt.path
}

// Handle adds the route pattern → h.
func (t *routeTable) Handle(pattern string, h http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	t.routes = append(t.routes, route{method: method, path: strings.TrimSpace(path), handler: h})
}

// HandleFunc adds the route pattern → h.
func (t *routeTable) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	t.Handle(pattern, http.HandlerFunc(h))
}

// mux registers every route on a new ServeMux (which panics on two
// conflicting patterns, as it would have when they were registered one by
// one).
func (t *routeTable) mux() *http.ServeMux {
	m := http.NewServeMux()
	for _, rt := range t.routes {
		m.Handle(rt.pattern(), rt.handler)
	}
	return m
}

// patterns lists the routes' patterns in the order they were added.
func (t *routeTable) patterns() []string {
	out := make([]string, len(t.routes))
	for i, rt := range t.routes {
		out[i] = rt.pattern()
	}
	return out
}
