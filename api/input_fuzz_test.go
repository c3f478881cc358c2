package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzReadObject: whatever a shop sends, the strict reader never panics; a
// valid JSON object is read with every key once, as the body has it; a
// duplicate key is a problem, never a silent last-wins; and a refusal names
// nothing of Go or the parser.
func FuzzReadObject(f *testing.F) {
	for _, seed := range []string{`{"amount_fen":1,"AMOUNT_FEN":777}`, `{"a":1,"a":2}`, `{`, `[]`, `{"x":"\u001b"}`,
		`{"amount_fen":1} {}`, `{"a":{"b":[1,2,{"c":null}]}}`, ``, `"s"`, `{"":0}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/orders", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		o, err := readObject(r, false)
		valid := json.Valid(body) && strings.HasPrefix(string(bytes.TrimSpace(body)), "{")
		if err != nil {
			var eb *errBody
			if !errors.As(err, &eb) || eb.status < 400 || eb.status > 499 {
				t.Fatalf("%q: %v is not a 4xx refusal", body, err)
			}
			for _, leak := range []string{"Go ", "struct", "json:", "invalid character", "unmarshal"} {
				if strings.Contains(eb.reason, leak) {
					t.Fatalf("%q: the refusal %q names the parser (%s)", body, eb.reason, leak)
				}
			}
			if valid {
				t.Fatalf("%q: a valid JSON object refused: %v", body, err)
			}
			return
		}
		if !valid {
			t.Fatalf("%q: not one valid JSON object, read anyway", body)
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal(body, &all); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		seen := map[string]bool{}
		for _, k := range o.keys {
			if seen[k] {
				t.Fatalf("%q: key %q read twice", body, k)
			}
			seen[k] = true
		}
		if len(seen) != len(all) {
			t.Fatalf("%q: %d keys read, the body has %d", body, len(seen), len(all))
		}
		dups := 0
		for _, p := range o.ps {
			if p.Code == ProblemDuplicateField {
				dups++
			}
		}
		if strings.Count(string(body), `"`) > 0 && dups == 0 {
			// Every key appeared once: what was read is what encoding/json reads.
			for k, v := range all {
				if !bytes.Equal(bytes.TrimSpace(o.values[k]), bytes.TrimSpace(v)) {
					t.Fatalf("%q: key %q read as %s, the body says %s", body, k, o.values[k], v)
				}
			}
		}
	})
}
