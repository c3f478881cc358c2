package openapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	// libopenapi-validator rather than kin-openapi: it implements OpenAPI
	// 3.1 (its schemas are JSON Schema 2020-12, validated by a 2020-12
	// validator: type arrays, const, if/then/else, dependentSchemas,
	// unevaluatedProperties, $ref beside other keywords), validates a
	// document against the 3.1 meta-schema, and checks statuses, content
	// types and response headers. kin-openapi's 3.1 support is months old
	// and partial; wxflow's document is 3.1 and uses those keywords.
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/wxflow/wxflow/api"
)

// Listener names one of the API's two listeners: the document's paths say,
// by their servers' x-listener, which serves them.
type Listener string

// The listeners.
const (
	Internal Listener = "internal" // the shop API, the admin API, /metrics, /readyz, /openapi.json
	Public   Listener = "public"   // WeChat's notifications and /healthz only
)

// Checker validates requests and answers against the OpenAPI document. It
// is safe for concurrent use. A mismatch is reported twice: at once, to the
// caller (Transport's RoundTrip returns an error), and in full when the test
// ends (tb.Errorf in a Cleanup), so that one a caller swallows (a proxy's
// 502, a client that retries) still fails the test.
type Checker struct {
	listener Listener
	ops      []operation // the document's operations on the listener
	v        *shared

	mu       sync.Mutex
	failures []string
}

// shared is the document's validator, built once per test binary: building
// it compiles every schema (a fifth of a second), and every API test makes
// a Checker. It is read-only once built, like the embedded document.
type shared struct {
	mu      sync.Mutex // validation is serialized: the library does not promise concurrent use
	v       validator.Validator
	schemas schema_validation.SchemaValidator
	model   *v3.Document
}

// theValidator builds the shared validator on first use. Formats are
// assertions, not annotations: a date-time that is not RFC 3339, a
// client_ip that is no IP address, fail.
var theValidator = sync.OnceValues(func() (*shared, error) {
	d, err := libopenapi.NewDocument(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("openapitest: read the document: %w", err)
	}
	m, err := d.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapitest: build the model: %w", err)
	}
	v := validator.NewValidatorFromV3Model(&m.Model, config.WithFormatAssertions())
	return &shared{v: v, schemas: schema_validation.NewSchemaValidator(config.WithFormatAssertions()), model: &m.Model}, nil
})

// operation is one method and path template of the document.
type operation struct {
	method   string
	segments []string // the template split on "/"; "{x}" matches one segment
}

// Operations lists the operations doc has on listener as http.ServeMux
// patterns ("POST /v1/orders"), sorted.
func Operations(doc []byte, listener Listener) ([]string, error) {
	ops, err := operations(doc, listener)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.method + " " + strings.Join(o.segments, "/")
	}
	slices.Sort(out)
	return out, nil
}

// New returns a Checker of the traffic of listener, and reports every
// mismatch it met when tb ends.
func New(tb testing.TB, listener Listener) *Checker {
	tb.Helper()
	ops, err := operations(api.OpenAPI(), listener)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := theValidator()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Checker{listener: listener, ops: ops, v: v}
	tb.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range c.failures {
			tb.Errorf("%s", f)
		}
	})
	return c
}

// operations lists the document's operations served on listener: a path's
// own servers, else the document's, name the listeners by x-listener.
func operations(doc []byte, listener Listener) ([]operation, error) {
	type server struct {
		Listener Listener `json:"x-listener"`
	}
	var d struct {
		Servers []server                   `json:"servers"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openapitest: read the document: %w", err)
	}
	var ops []operation
	for path, raw := range d.Paths {
		var item map[string]json.RawMessage
		if err := json.Unmarshal(raw, &item); err != nil {
			return nil, fmt.Errorf("openapitest: path %s: %w", path, err)
		}
		servers := d.Servers
		if s, ok := item["servers"]; ok {
			servers = nil
			if err := json.Unmarshal(s, &servers); err != nil {
				return nil, fmt.Errorf("openapitest: path %s: servers: %w", path, err)
			}
		}
		if !slices.ContainsFunc(servers, func(s server) bool { return s.Listener == listener }) {
			continue
		}
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops = append(ops, operation{method: strings.ToUpper(method), segments: strings.Split(path, "/")})
			}
		}
	}
	return ops, nil
}

// documented says whether the document has the request's method and path
// on the Checker's listener, and whether it has the path at all.
func (c *Checker) documented(r *http.Request) (op, path bool) {
	segs := strings.Split(r.URL.EscapedPath(), "/") // as http.ServeMux matches: %2F is no slash
	for _, o := range c.ops {
		if matches(o.segments, segs) {
			path = true
			op = op || o.method == r.Method
		}
	}
	return op, path
}

// matches says whether a path's segments fit a template's, as http.ServeMux
// would match them.
func matches(template, segs []string) bool {
	if len(template) != len(segs) {
		return false
	}
	for i, t := range template {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if t != segs[i] {
			return false
		}
	}
	return true
}

// IsPage says whether path is one of the admin's HTML pages (or their style
// sheet), which the document does not describe: they are not API.
func IsPage(path string) bool {
	return strings.HasPrefix(path, "/admin/") && !strings.HasPrefix(path, "/admin/api/")
}

// Check validates one exchange: req (whose body, if any, is reqBody) and
// its answer resp (whose body is respBody). It returns a description of
// every mismatch, or nil; it records none.
func (c *Checker) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	if IsPage(req.URL.Path) {
		return nil
	}
	op, path := c.documented(req)
	if !op {
		return fallback(req, resp, respBody, path)
	}
	c.v.mu.Lock()
	reqOK, reqErrs := c.v.v.ValidateHttpRequestSync(withBody(req, reqBody))
	respOK, respErrs := c.v.v.ValidateHttpResponse(withBody(req, reqBody), withRespBody(resp, respBody))
	c.v.mu.Unlock()
	var problems []string
	if !respOK {
		problems = append(problems, "the answer does not match the document:"+describe(respErrs))
	}
	if !reqOK && !refused(resp, respBody) {
		problems = append(problems, fmt.Sprintf("the document calls the request invalid, yet it was answered %d:%s", resp.StatusCode, describe(reqErrs)))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s → %d %s\n%s\nbody: %.600s", req.Method, req.URL.RequestURI(), resp.StatusCode,
		resp.Header.Get("Content-Type"), strings.Join(problems, "\n"), respBody)
}

// CheckSchema validates body, a JSON value, against the document's schema
// called name (components.schemas): for what wxflow publishes beside its
// HTTP answers, such as the events on NATS that webhooks carry too.
func (c *Checker) CheckSchema(name string, body []byte) error {
	proxy := c.v.model.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		return fmt.Errorf("openapitest: the document has no schema %q", name)
	}
	c.v.mu.Lock()
	ok, errs := c.v.schemas.ValidateSchemaBytes(proxy.Schema(), body)
	c.v.mu.Unlock()
	if ok {
		return nil
	}
	return fmt.Errorf("openapitest: the value does not match the schema %s:%s\nvalue: %.600s", name, describe(errs), body)
}

// record keeps a mismatch for the end of the test.
func (c *Checker) record(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf("openapitest (%s listener): %v", c.listener, err))
}

// fallback checks the answer to a request the document does not have: the
// mux's 404, or its 405 when the path is documented with other methods.
func fallback(req *http.Request, resp *http.Response, body []byte, pathKnown bool) error {
	want, code := http.StatusNotFound, "not_found"
	if resp.StatusCode == http.StatusMethodNotAllowed && pathKnown {
		want, code = http.StatusMethodNotAllowed, "method_not_allowed"
	}
	var e struct {
		Error struct {
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode != want:
		return fmt.Errorf("%s %s is not in the document, yet it was answered %d (want %d %s)",
			req.Method, req.URL.Path, resp.StatusCode, want, code)
	case mt != "application/json" || dec.Decode(&e) != nil || e.Error.Code != code || e.Error.Reason == "":
		return fmt.Errorf("%s %s: %d is not the error shape with code %s: %s %.300s",
			req.Method, req.URL.Path, resp.StatusCode, code, resp.Header.Get("Content-Type"), body)
	case want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "":
		return fmt.Errorf("%s %s: 405 without Allow", req.Method, req.URL.Path)
	case resp.Header.Get("X-Request-Id") == "":
		return fmt.Errorf("%s %s: %d without X-Request-Id", req.Method, req.URL.Path, resp.StatusCode)
	}
	return nil
}

// refused says whether an answer refuses its request: a 4xx, or WeChat
// v2's FAIL reply, which WeChat's protocol sends with 200.
func refused(resp *http.Response, body []byte) bool {
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return true
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/xml" && bytes.Contains(body, []byte("<return_code><![CDATA[FAIL]]></return_code>"))
}

// describe lists validation errors, one per line, with each schema failure.
func describe(errs []*valerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s: %s", f.FieldPath, f.Reason)
		}
	}
	return b.String()
}

// withBody is a copy of r reading body.
func withBody(r *http.Request, body []byte) *http.Request {
	out := r.Clone(r.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return out
}

// withRespBody is a copy of resp reading body.
func withRespBody(resp *http.Response, body []byte) *http.Response {
	out := *resp
	out.Body = io.NopCloser(bytes.NewReader(body))
	return &out
}
