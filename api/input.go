package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strict input of the shop API. encoding/json alone is lenient where money
// is at stake: it matches keys without regard to case and keeps the last of
// duplicate keys ({"amount_fen":1,"AMOUNT_FEN":777} asked for 777 fen), and
// its errors name Go types. So a body is first walked token by token as one
// JSON object whose keys must each appear once, exactly as documented; then
// each field is read from its raw value, every problem collected, none
// phrased by the parser.

// object is a request body's top-level JSON object, read strictly.
type object struct {
	keys   []string                   // in the body's order
	values map[string]json.RawMessage // by exact key
	asked  map[string]bool            // the fields the request has
	ps     Problems
}

// errBody is a body that cannot be read as one JSON object: the answer's
// status and code, with a reason that names nothing internal.
type errBody struct {
	status       int
	code, reason string
}

func (e *errBody) Error() string { return e.reason }

// readObject reads r's body as one JSON object. Content-Type must be
// application/json (parameters such as charset allowed): a form or
// text/plain body, which a browser may send cross-origin without asking, is
// 415. allowEmpty lets a request without parameters (close) have no body.
// Duplicate keys are problems of the object, reported with the others.
func readObject(r *http.Request, allowEmpty bool) (*object, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &errBody{http.StatusUnsupportedMediaType, codeMediaType, "Content-Type must be application/json"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &errBody{http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)}
		}
		return nil, &errBody{http.StatusBadRequest, codeMalformed, "the body could not be read"}
	}
	o := &object{values: map[string]json.RawMessage{}, asked: map[string]bool{}}
	if allowEmpty && len(bytes.TrimSpace(body)) == 0 {
		return o, nil
	}
	malformed := func(err error) error {
		reason := "the body must be one JSON object"
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			reason = fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			reason = "the body ends before its JSON object does"
		}
		return &errBody{http.StatusBadRequest, codeMalformed, reason}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, malformed(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(err)
		}
		if _, dup := o.values[key]; dup {
			o.ps.add(key, ProblemDuplicateField, "the key appears more than once")
			continue
		}
		o.keys, o.values[key] = append(o.keys, key), raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &errBody{http.StatusBadRequest, codeMalformed, "the body has data after its JSON object"}
	}
	return o, nil
}

// raw returns a field's raw value, nil when absent; it marks the field as
// one the request has.
func (o *object) raw(name string) json.RawMessage {
	o.asked[name] = true
	return o.values[name]
}

// str reads a string field; absent leaves dst empty.
func (o *object) str(name string, dst *string) {
	raw := o.raw(name)
	if raw == nil {
		return
	}
	if len(raw) == 0 || raw[0] != '"' {
		o.ps.add(name, ProblemWrongType, "must be a string")
		return
	}
	if !utf8.Valid(raw) {
		o.ps.add(name, ProblemControlCharacter, "must be valid UTF-8 text")
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		o.ps.add(name, ProblemWrongType, "must be a string")
	}
}

// integer reads an integer field: a JSON number without fraction or
// exponent; absent leaves dst 0.
func (o *object) integer(name string, dst *int64) {
	raw := o.raw(name)
	if raw == nil {
		return
	}
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" || len(digits) > 1 && digits[0] == '0' {
		o.ps.add(name, ProblemNotInteger, "must be an integer")
		return
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		o.ps.add(name, ProblemOutOfRange, "is far out of range")
		return
	}
	*dst = n
}

// finish reports every key the request does not have. A key that differs
// from a field only in case is named as such: keys are matched exactly.
func (o *object) finish() {
	for _, k := range o.keys {
		if o.asked[k] {
			continue
		}
		reason := "no such field"
		for name := range o.asked {
			if strings.EqualFold(k, name) {
				reason = fmt.Sprintf("no such field (keys are case-sensitive: %s?)", name)
			}
		}
		o.ps.add(k, ProblemUnknownField, reason)
	}
}

// merge adds the problems of fields that have none yet: a field whose value
// could not be read is not also told it is missing or out of range.
func (ps *Problems) merge(more Problems) {
	has := map[string]bool{}
	for _, p := range *ps {
		has[p.Field] = true
	}
	for _, p := range more {
		if !has[p.Field] {
			*ps = append(*ps, p)
		}
	}
}

// checkText adds a problem when s, a free-text field, is longer than max
// bytes or holds a control character (an ESC in a description failed an
// order for good at WeChat) or invalid UTF-8.
func (ps *Problems) checkText(field, s string, max int) {
	switch {
	case len(s) > max:
		ps.add(field, ProblemTooLong, fmt.Sprintf("must be at most %d bytes", max))
	case !cleanText(s):
		ps.add(field, ProblemControlCharacter, "must not hold control characters")
	}
}

// cleanText: valid UTF-8 without control characters (C0, DEL, C1) or the
// line and paragraph separators.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' || c == utf8.RuneError {
			return false
		}
	}
	return true
}

// checkToken adds a problem when s is longer than max bytes or holds
// anything but visible ASCII: codes, openids, keys.
func (ps *Problems) checkToken(field, s string, max int) {
	if len(s) > max {
		ps.add(field, ProblemTooLong, fmt.Sprintf("must be at most %d bytes", max))
		return
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			ps.add(field, ProblemInvalidFormat, "must be visible ASCII characters only")
			return
		}
	}
}

// writeBodyError answers a body that could not be read.
func writeBodyError(w http.ResponseWriter, err error) {
	var eb *errBody
	if errors.As(err, &eb) {
		writeError(w, eb.status, eb.code, eb.reason)
		return
	}
	writeError(w, http.StatusBadRequest, codeMalformed, "the body could not be read")
}
