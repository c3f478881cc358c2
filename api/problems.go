package api

import (
	"net/http"
	"strings"
)

// Problem is one thing wrong with one part of a shop's request: a field of
// the JSON body, a query parameter or a header. Code is stable and
// machine-readable, one per kind of problem; Reason is for people and names
// nothing internal (no Go type, no parser message).
type Problem struct {
	Field  string `json:"field"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// The problem codes: one per kind of problem, so a shop can act on each.
const (
	ProblemRequired         = "required"           // the field is missing or empty
	ProblemWrongType        = "wrong_type"         // e.g. a number where a string goes
	ProblemNotInteger       = "not_integer"        // a fraction, an exponent, a string…
	ProblemOutOfRange       = "out_of_range"       // a number outside the allowed range
	ProblemTooLong          = "too_long"           // more bytes than allowed
	ProblemControlCharacter = "control_character"  // a control character or invalid UTF-8 in text
	ProblemInvalidFormat    = "invalid_format"     // not of the field's form (out_trade_no, an IP, a URL…)
	ProblemInvalidValue     = "invalid_value"      // not one of the allowed values
	ProblemUnknownField     = "unknown_field"      // a key the request does not have (keys are case-sensitive)
	ProblemDuplicateField   = "duplicate_field"    // the same key twice in one object
	ProblemConflict         = "conflicting"        // fields that cannot go together
	ProblemDomainNotAllowed = "domain_not_allowed" // a URL outside WXFLOW_APP_DOMAINS
)

// Problems is every problem of a request, reported at once. It is an error,
// so that a request's Validate can return it.
type Problems []Problem

// Error lists the problems on one line.
func (ps Problems) Error() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Field + ": " + p.Reason
	}
	return strings.Join(parts, "; ")
}

// add records a problem.
func (ps *Problems) add(field, code, reason string) {
	*ps = append(*ps, Problem{Field: field, Code: code, Reason: reason})
}

// err is nil when there is no problem (never a typed nil).
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Top-level error codes of the shop API besides the engine's refusal codes.
const (
	codeInvalidFields   = "invalid_fields"         // 422: see problems
	codeMalformed       = "malformed_request"      // 400: not JSON, not one object, trailing data
	codeTooLarge        = "body_too_large"         // 413
	codeMediaType       = "unsupported_media_type" // 415
	codeUnauthenticated = "unauthenticated"        // 401
	codeNotFound        = "not_found"              // 404: no such route, or no such order of this shop
	codeMethod          = "method_not_allowed"     // 405
	codeMerchantDenied  = "merchant_not_allowed"   // 403: the shop may not act for the merchant
	codeUnavailable     = "unavailable"            // 503
	// 503: the merchant is configured but its configuration is broken
	codeMerchantUnavailable = "merchant_unavailable"
	codeNotSigned           = "not_signed" // 409: no pay parameters yet
	reasonUnavailable       = "wxflow cannot answer now; try again"
	reasonInvalidFields     = "the request has invalid fields: see problems"
	reasonNoSuchOrder       = "no such order"
	reasonNoSuchRefund      = "no such refund of this order"
	reasonNoSuchResource    = "no such resource"
)

// writeProblems answers 422 with every problem of the request.
func writeProblems(w http.ResponseWriter, ps Problems) {
	var b errorBody
	b.Error.Code, b.Error.Reason, b.Error.Problems = codeInvalidFields, reasonInvalidFields, ps
	writeJSON(w, http.StatusUnprocessableEntity, b)
}
