// Package openapitest checks wxflow's HTTP traffic against its OpenAPI 3.1
// document (api/openapi.json, [api.OpenAPI]) in tests: every request a test
// sends through a [Checker] and every answer it gets back are validated, and
// an answer that does not match the document fails the test.
//
// It is test code: only _test.go files import it (e2e's TestImportRules
// keeps it out of the binary), so its validator, libopenapi-validator, is
// never on a production request's path.
//
// The rules, for each request a Checker sees:
//
//   - An admin HTML page (a path under /admin/ but not /admin/api/) is not
//     API: it is not checked.
//   - A method and path the document does not have on the Checker's listener
//     must be answered 404 not_found or 405 method_not_allowed (with Allow),
//     in the API's error shape: the mux's own answers.
//   - Otherwise the answer must match the document: a documented status,
//     its content type, its body's schema, its required headers.
//   - A request the document calls invalid must be refused (a 4xx, or
//     WeChat v2's FAIL reply): the document may be stricter than the server
//     about what it asks for, never more lenient than what the server takes.
package openapitest
