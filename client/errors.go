package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is a refusal from wxflow: an HTTP answer that is not a success, a
// refusal the engine answered on NATS, or a request this package found
// invalid before sending it. Act on Code (stable, see the Code constants) or
// test it with [errors.Is] against the sentinels ([ErrNotFound],
// [ErrConflict], …); Reason is for people.
type Error struct {
	// StatusCode is the HTTP status; 0 for an answer over NATS or a request
	// refused before it was sent.
	StatusCode int
	// Code is the error's code: "not_found", "over_refund", … (docs/API.md).
	Code string
	// Reason says what went wrong, for people.
	Reason string
	// Problems lists every problem of an invalid request (Code
	// "invalid_fields"): one per field, parameter or header.
	Problems []Problem
	// RetryAfter is how long wxflow asked to wait before trying again
	// (Retry-After of a 429 or 503); 0 when it did not say.
	RetryAfter time.Duration
	// RequestID is the answer's X-Request-Id: quote it when asking about
	// a request, it finds the request in wxflow's logs.
	RequestID string
}

// Problem is one thing wrong with one part of a request.
type Problem struct {
	// Field is the body's field, the query parameter or the header in the way.
	Field string `json:"field"`
	// Code is stable: "required", "out_of_range", "too_long", … (the Problem… constants).
	Code string `json:"code"`
	// Reason is for people.
	Reason string `json:"reason"`
}

// The problem codes wxflow uses in [Problem.Code].
const (
	ProblemRequired         = "required"
	ProblemWrongType        = "wrong_type"
	ProblemNotInteger       = "not_integer"
	ProblemOutOfRange       = "out_of_range"
	ProblemTooLong          = "too_long"
	ProblemControlCharacter = "control_character"
	ProblemInvalidFormat    = "invalid_format"
	ProblemInvalidValue     = "invalid_value"
	ProblemUnknownField     = "unknown_field"
	ProblemDuplicateField   = "duplicate_field"
	ProblemConflicting      = "conflicting"
	ProblemDomainNotAllowed = "domain_not_allowed"
)

// The error codes of the shop API and of the engine's refusals
// (docs/API.md, "Codes").
const (
	CodeMalformedRequest     = "malformed_request"      // 400: not one JSON object
	CodeUnauthenticated      = "unauthenticated"        // 401: no key, a wrong or revoked key
	CodeMerchantNotAllowed   = "merchant_not_allowed"   // 403: the shop may not act for the merchant
	CodeForbiddenOrigin      = "forbidden_origin"       // NATS: the publisher may not send that command
	CodeNotFound             = "not_found"              // 404: no such route or order of yours
	CodeUnknownOrder         = "unknown_order"          // 404: the engine knows no such order
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeConflict             = "conflict"               // 409: key or number reused with other content
	CodeInvalidState         = "invalid_state"          // 409: the order's state does not allow it
	CodeRefundInProgress     = "refund_in_progress"     // 409: no longer answered since refunds queue; kept for matching
	CodeCloseRequested       = "close_requested"        // 409: closing is under way
	CodeDuplicate            = "duplicate"              // 409: already done
	CodeNotSigned            = "not_signed"             // 409: no pay parameters: the order is not signed
	CodeBodyTooLarge         = "body_too_large"         // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeInvalidFields        = "invalid_fields"         // 422: see Problems
	CodeOverRefund           = "over_refund"            // 422: more than remains of the payment
	CodeTooManyRefunds       = "too_many_refunds"       // 422: the order has 50 refunds (WeChat's limit)
	CodeInvalid              = "invalid"                // 422: the engine refused a malformed command
	CodeRateLimited          = "rate_limited"           // 429: wait RetryAfter
	CodeInternal             = "internal"               // 500: a bug; report it with the RequestID
	CodeUnavailable          = "unavailable"            // 503: wxflow cannot answer now
)

// Sentinels for the errors a shop handles. [Error] matches them with
// [errors.Is] by its Code:
//
//	if errors.Is(err, client.ErrOverRefund) { … }
var (
	// ErrUnauthenticated: the key is missing, wrong or revoked.
	ErrUnauthenticated = errors.New("wxflow: unauthenticated")
	// ErrNotFound: no such order (or refund) of this shop (not_found, unknown_order).
	ErrNotFound = errors.New("wxflow: not found")
	// ErrConflict: an Idempotency-Key, out_trade_no or out_refund_no was
	// used before with other content.
	ErrConflict = errors.New("wxflow: conflict")
	// ErrInvalidState: the order's state does not allow it (refunding an
	// unpaid order, closing a paid one).
	ErrInvalidState = errors.New("wxflow: invalid state")
	// ErrRefundInProgress: another refund of the order is at WeChat (older
	// wxflow; refunds queue now).
	ErrRefundInProgress = errors.New("wxflow: refund in progress")
	// ErrCloseRequested: closing the order is under way.
	ErrCloseRequested = errors.New("wxflow: close requested")
	// ErrDuplicate: already done.
	ErrDuplicate = errors.New("wxflow: duplicate")
	// ErrNotSigned: the order has no pay parameters now (not signed).
	ErrNotSigned = errors.New("wxflow: not signed")
	// ErrOverRefund: more than remains of the payment.
	ErrOverRefund = errors.New("wxflow: over refund")
	// ErrTooManyRefunds: the order has as many refunds as WeChat takes (50).
	ErrTooManyRefunds = errors.New("wxflow: too many refunds")
	// ErrInvalidRequest: the request is invalid (invalid_fields with
	// Problems, invalid, malformed_request, body_too_large,
	// unsupported_media_type, method_not_allowed).
	ErrInvalidRequest = errors.New("wxflow: invalid request")
	// ErrMerchantNotAllowed: the shop may not act for the merchant (or
	// send that command).
	ErrMerchantNotAllowed = errors.New("wxflow: merchant not allowed")
	// ErrRateLimited: too many requests; Error.RetryAfter says how long to wait.
	ErrRateLimited = errors.New("wxflow: rate limited")
	// ErrUnavailable: wxflow could not answer now (unavailable, internal):
	// try again later, with the same Idempotency-Key.
	ErrUnavailable = errors.New("wxflow: unavailable")
)

// sentinels maps each code to the sentinel it matches.
var sentinels = map[string]error{
	CodeUnauthenticated:      ErrUnauthenticated,
	CodeNotFound:             ErrNotFound,
	CodeUnknownOrder:         ErrNotFound,
	CodeConflict:             ErrConflict,
	CodeInvalidState:         ErrInvalidState,
	CodeRefundInProgress:     ErrRefundInProgress,
	CodeCloseRequested:       ErrCloseRequested,
	CodeDuplicate:            ErrDuplicate,
	CodeNotSigned:            ErrNotSigned,
	CodeOverRefund:           ErrOverRefund,
	CodeTooManyRefunds:       ErrTooManyRefunds,
	CodeInvalidFields:        ErrInvalidRequest,
	CodeInvalid:              ErrInvalidRequest,
	CodeMalformedRequest:     ErrInvalidRequest,
	CodeBodyTooLarge:         ErrInvalidRequest,
	CodeUnsupportedMediaType: ErrInvalidRequest,
	CodeMethodNotAllowed:     ErrInvalidRequest,
	CodeMerchantNotAllowed:   ErrMerchantNotAllowed,
	CodeForbiddenOrigin:      ErrMerchantNotAllowed,
	CodeRateLimited:          ErrRateLimited,
	CodeUnavailable:          ErrUnavailable,
	CodeInternal:             ErrUnavailable,
}

// Error says the status, the code, the reason and every problem on one line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("wxflow: ")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.StatusCode)
	}
	b.WriteString(e.Code)
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", p.Field, p.Reason)
		if i == len(e.Problems)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// problems collects a request's problems, as wxflow reports them.
type problems []Problem

func (ps *problems) add(field, code, reason string) {
	*ps = append(*ps, Problem{Field: field, Code: code, Reason: reason})
}

// err is the problems as an invalid_fields [Error], or nil.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalidFields, Reason: "the request has invalid fields: see problems", Problems: ps}
}
