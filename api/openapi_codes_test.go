package api_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/api"
)

// statusCode is one error code answered with one HTTP status.
type statusCode struct {
	status int
	code   string
}

func (p statusCode) String() string { return fmt.Sprintf("%d %s", p.status, p.code) }

// httpStatuses are the net/http names of the statuses the API's errors are
// answered with.
var httpStatuses = map[string]int{
	"StatusBadRequest": 400, "StatusUnauthorized": 401, "StatusForbidden": 403, "StatusNotFound": 404,
	"StatusMethodNotAllowed": 405, "StatusConflict": 409, "StatusRequestEntityTooLarge": 413,
	"StatusUnsupportedMediaType": 415, "StatusUnprocessableEntity": 422, "StatusTooManyRequests": 429,
	"StatusInternalServerError": 500, "StatusServiceUnavailable": 503,
}

// parseGo parses the non-test Go files of dir.
func parseGo(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// stringConsts returns the string constants of files whose type is typ
// ("" for untyped ones), by name.
func stringConsts(files []*ast.File, typ string) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			d, ok := n.(*ast.GenDecl)
			if !ok || d.Tok != token.CONST {
				return true
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, _ := vs.Type.(*ast.Ident); typ != "" && (id == nil || id.Name != typ) || typ == "" && vs.Type != nil {
					continue
				}
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							out[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	return out
}

// sourceErrors returns every (status, error code) the api package's source
// answers with: writeError calls and errBody values whose status is an
// http.Status… constant and whose code is a literal or a constant. Errors
// whose code is the engine's (statusOf) are not among them.
func sourceErrors(t *testing.T, files []*ast.File, consts map[string]string) []statusCode {
	t.Helper()
	var out []statusCode
	add := func(status, code ast.Expr) {
		sel, ok := status.(*ast.SelectorExpr)
		if !ok {
			return // statusOf(res.Code), status: the engine's or a variable's
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "http" {
			return // eb.status: a variable's
		}
		s, ok := httpStatuses[sel.Sel.Name]
		if !ok {
			t.Errorf("an error answered with http.%s: add it to httpStatuses", sel.Sel.Name)
			return
		}
		switch c := code.(type) {
		case *ast.BasicLit:
			v, _ := strconv.Unquote(c.Value)
			out = append(out, statusCode{s, v})
		case *ast.Ident:
			v, ok := consts[c.Name]
			if !ok {
				t.Errorf("an error code %s that is not a string constant", c.Name)
				return
			}
			out = append(out, statusCode{s, v})
		}
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				// An error body built by hand (writeProblems): a code
				// assigned to ….Code, written by writeJSON with a status.
				var codes []ast.Expr
				var statuses []ast.Expr
				ast.Inspect(x, func(n ast.Node) bool {
					switch y := n.(type) {
					case *ast.AssignStmt:
						for i, l := range y.Lhs {
							if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Code" && i < len(y.Rhs) {
								codes = append(codes, y.Rhs[i])
							}
						}
					case *ast.CallExpr:
						if id, ok := y.Fun.(*ast.Ident); ok && id.Name == "writeJSON" && len(y.Args) == 3 {
							statuses = append(statuses, y.Args[1])
						}
					}
					return true
				})
				for _, c := range codes {
					for _, st := range statuses {
						add(st, c)
					}
				}
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "writeError" && len(x.Args) == 4 {
					add(x.Args[1], x.Args[2])
				}
			case *ast.CompositeLit:
				if id, ok := x.Type.(*ast.Ident); ok && id.Name == "errBody" && len(x.Elts) == 3 {
					add(x.Elts[0], x.Elts[1])
				}
			}
			return true
		})
	}
	if len(out) < 10 {
		t.Fatalf("found only %v in the source: the way errors are written changed", out)
	}
	return out
}

// documentedErrors returns every (status, error code) api/openapi.json
// lets an operation answer, and its ErrorCode and ProblemCode enums.
func documentedErrors(t *testing.T) (pairs map[statusCode]bool, errorCodes, problemCodes []string) {
	t.Helper()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Responses map[string]json.RawMessage `json:"responses"`
			Schemas   map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	enum := func(raw json.RawMessage) []string {
		var s struct {
			Enum  []string `json:"enum"`
			Const *string  `json:"const"`
		}
		_ = json.Unmarshal(raw, &s)
		if s.Const != nil {
			return []string{*s.Const}
		}
		return s.Enum
	}
	// codesOf follows a response's schema to the Code… schemas it names.
	var codesOf func(v any) []string
	codesOf = func(v any) []string {
		var out []string
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, "#/components/schemas/Code") {
				var s struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code json.RawMessage `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				}
				if err := json.Unmarshal(doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")], &s); err != nil {
					t.Fatal(err)
				}
				out = append(out, enum(s.Properties.Error.Properties.Code)...)
			}
			for _, y := range x {
				out = append(out, codesOf(y)...)
			}
		case []any:
			for _, y := range x {
				out = append(out, codesOf(y)...)
			}
		}
		return out
	}
	pairs = map[statusCode]bool{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if method == "servers" || json.Unmarshal(raw, &op) != nil {
				continue
			}
			for status, resp := range op.Responses {
				var ref struct {
					Ref string `json:"$ref"`
				}
				_ = json.Unmarshal(resp, &ref)
				if ref.Ref != "" {
					resp = doc.Components.Responses[strings.TrimPrefix(ref.Ref, "#/components/responses/")]
				}
				var v any
				_ = json.Unmarshal(resp, &v)
				s, err := strconv.Atoi(status)
				if err != nil {
					t.Fatalf("%s %s: status %q", method, path, status)
				}
				for _, code := range codesOf(v) {
					pairs[statusCode{s, code}] = true
				}
			}
		}
	}
	return pairs, enum(doc.Components.Schemas["ErrorCode"]), enum(doc.Components.Schemas["ProblemCode"])
}

// TestOpenAPIErrorCodes: every error code the source can answer is in
// api/openapi.json, with the status it is answered with (the engine's
// refusals with the status statusOf gives them), and the document has no
// code the source never answers; its problem codes are problems.go's.
func TestOpenAPIErrorCodes(t *testing.T) {
	pairs, errorCodes, problemCodes := documentedErrors(t)
	apiFiles := parseGo(t, ".")
	refusals := stringConsts(parseGo(t, filepath.Join("..", "engine")), "RefusalCode")
	if len(refusals) < 10 {
		t.Fatalf("found only %v: the engine's refusal codes moved", refusals)
	}
	var want []statusCode
	for _, code := range refusals {
		want = append(want, statusCode{api.StatusOf(code), code})
	}
	want = append(want, sourceErrors(t, apiFiles, stringConsts(apiFiles, ""))...)
	known := map[string]bool{"": true} // an admin answer without the engine's code (adminAnswer)
	// The books worker's answers to a run on demand, which the admin API
	// passes on as its codes (api/admin_books.go).
	for _, f := range parseGo(t, filepath.Join("..", "workers", "books")) {
		ast.Inspect(f, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Code" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						code, _ := strconv.Unquote(lit.Value)
						known[code] = true
					}
				}
			}
			return true
		})
	}
	if !known["busy"] {
		t.Fatal("no code of the books worker found: its answers moved")
	}
	for _, p := range want {
		known[p.code] = true
		// 405 is the mux's answer to a documented path asked with another
		// method: no operation has it (info.description says it;
		// openapitest checks it).
		if !pairs[p] && p != (statusCode{405, "method_not_allowed"}) {
			t.Errorf("the source answers %s; api/openapi.json has no operation answering it", p)
		}
		if !slices.Contains(errorCodes, p.code) {
			t.Errorf("error code %q is not in the ErrorCode schema", p.code)
		}
	}
	for p := range pairs {
		if !known[p.code] {
			t.Errorf("api/openapi.json answers %s, which the source never does", p)
		}
	}
	for _, code := range errorCodes {
		if !known[code] {
			t.Errorf("the ErrorCode schema has %q, which the source never answers", code)
		}
	}
	var problems []string
	for name, code := range stringConsts(apiFiles, "") {
		if strings.HasPrefix(name, "Problem") {
			problems = append(problems, code)
		}
	}
	slices.Sort(problems)
	slices.Sort(problemCodes)
	if !slices.Equal(problems, problemCodes) {
		t.Errorf("problem codes: problems.go has %v, api/openapi.json %v", problems, problemCodes)
	}
}

// TestOpenAPIEnumsAreTheEngines: the document's states, refund states and
// event types are the engine's constants, no more and no fewer.
func TestOpenAPIEnumsAreTheEngines(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum []string `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	engine := parseGo(t, filepath.Join("..", "engine"))
	for _, tc := range []struct{ schema, goType string }{
		{"State", "State"},
		{"RefundState", "RefundState"},
		{"EventType", "EventType"},
	} {
		var want []string
		for _, v := range stringConsts(engine, tc.goType) {
			want = append(want, v)
		}
		got := slices.Clone(doc.Components.Schemas[tc.schema].Enum)
		slices.Sort(want)
		slices.Sort(got)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("schema %s has %v; engine's %s constants are %v", tc.schema, got, tc.goType, want)
		}
	}
}
