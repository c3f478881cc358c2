package api

import (
	"bytes"
	_ "embed"
	"net/http"
)

// openapiDocument is the OpenAPI 3.1 description of every route the API
// serves but the admin's HTML pages: the one source of truth, served as is
// at GET /openapi.json. openapi_test.go fails when a route is registered
// that it lacks, or it has a route that is not registered; the API tests
// and the end-to-end test check every request and answer against it.
//
//go:embed openapi.json
var openapiDocument []byte

// OpenAPI returns the OpenAPI 3.1 document (JSON) served at GET
// /openapi.json: the shop API, the admin API, WeChat's notification
// endpoints and the health checks, with every error code.
func OpenAPI() []byte { return bytes.Clone(openapiDocument) }

// serveOpenAPI answers GET /openapi.json, on the internal listener only and
// without a key: the document holds no secret (the routes, shapes and error
// codes are those of the open-source code and docs/API.md), and a shop
// developer or a code generator should read it before having a key.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openapiDocument)
}
