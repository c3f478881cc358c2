package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/internal/openapitest"
)

// validateDocument loads doc as an OpenAPI document and validates it
// against the OpenAPI 3.1 schema; it returns what is wrong.
func validateDocument(t *testing.T, doc []byte) []string {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return []string{err.Error()}
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		return []string{errs[0].Error()}
	}
	var out []string
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			out = append(out, e.Error())
		}
	}
	return out
}

// TestOpenAPIDocumentIsValid: api/openapi.json is an OpenAPI 3.1 document,
// valid against the 3.1 schema, and every $ref in it resolves.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := api.OpenAPI()
	var head struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(doc, &head); err != nil || !strings.HasPrefix(head.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q (%v), want 3.1.x", head.OpenAPI, err)
	}
	if problems := validateDocument(t, doc); len(problems) > 0 {
		t.Fatalf("api/openapi.json is not a valid OpenAPI 3.1 document:\n%s", strings.Join(problems, "\n"))
	}
	d, _ := libopenapi.NewDocument(doc)
	if _, err := d.BuildV3Model(); err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	// The check is not blind: a parameter in a place OpenAPI does not have,
	// or an info without a title, fails.
	for name, broken := range map[string][]byte{
		"parameter in the body": bytes.Replace(doc, []byte(`"in": "path"`), []byte(`"in": "body"`), 1),
		"info without a title":  bytes.Replace(doc, []byte(`"title": "wxflow",`), nil, 1),
	} {
		if bytes.Equal(broken, doc) {
			t.Fatalf("%s: the document did not change", name)
		}
		if len(validateDocument(t, broken)) == 0 {
			t.Errorf("%s: validated", name)
		}
	}
}

// TestOpenAPIDescribesEveryRoute: every route registered on each listener
// is in the document, with that listener among its servers, and the
// document has no route that is not registered. The admin's HTML pages are
// not API; the public listener's catch-all "/" is its 404.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := newHarness(t) // the admin API and /metrics on
	internal, public := api.RoutePatterns(h.srv)
	for _, tc := range []struct {
		listener   openapitest.Listener
		registered []string
	}{
		{openapitest.Internal, internal},
		{openapitest.Public, public},
	} {
		t.Run(string(tc.listener), func(t *testing.T) {
			var served []string
			for _, p := range tc.registered {
				method, path, hasMethod := strings.Cut(p, " ")
				switch {
				case tc.listener == openapitest.Public && p == "/":
				case !hasMethod && openapitest.IsPage(p):
				case !hasMethod:
					t.Errorf("route %q has no method: the document cannot describe it", p)
				case !openapitest.IsPage(path):
					served = append(served, method+" "+path)
				}
			}
			slices.Sort(served)
			documented, err := openapitest.Operations(api.OpenAPI(), tc.listener)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range served {
				if _, found := slices.BinarySearch(documented, p); !found {
					t.Errorf("%s is registered on the %s listener but not in api/openapi.json", p, tc.listener)
				}
			}
			for _, p := range documented {
				if _, found := slices.BinarySearch(served, p); !found {
					t.Errorf("%s is in api/openapi.json on the %s listener but not registered there", p, tc.listener)
				}
			}
			if len(served) == 0 || len(documented) == 0 {
				t.Fatalf("nothing compared: %d registered, %d documented", len(served), len(documented))
			}
		})
	}
}

// TestOpenAPIServed: GET /openapi.json answers the document as is, without
// a key, on the internal listener only.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t)
	resp, out := h.doResp(t, http.MethodGet, "/openapi.json", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(out, api.OpenAPI()) {
		t.Fatalf("%d %s, %d bytes: not the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(out))
	}
	if s, _ := h.public(t, http.MethodGet, "/openapi.json", "", nil); s != http.StatusNotFound {
		t.Fatalf("on the public listener: %d, want 404", s)
	}
}
