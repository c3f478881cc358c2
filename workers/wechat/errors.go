package wechat

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Sentinel errors for the cases callers handle. An [*Error] matches the
// business sentinels through its Is method, so a worker writes
// errors.Is(err, wechat.ErrOrderPaid) whatever the API version.
var (
	// ErrSignature: a signature did not verify (response, notification or request).
	ErrSignature = errors.New("wechat: signature verification failed")
	// ErrMalformed: a message could not be parsed (bad XML / JSON, missing field, DOCTYPE).
	ErrMalformed = errors.New("wechat: malformed message")
	// ErrStale: a v3 timestamp is outside WeChat's ±5 minute window.
	ErrStale = errors.New("wechat: timestamp outside the allowed window")
	// ErrDecrypt: an encrypted resource (v3 resource, v2 req_info) did not decrypt.
	ErrDecrypt = errors.New("wechat: decryption failed")
	// ErrForeign: a genuine-looking message names another appid or mch_id.
	ErrForeign = errors.New("wechat: message for another appid or merchant")

	// ErrOrderPaid: WeChat says the order is already paid (ORDERPAID).
	ErrOrderPaid = errors.New("wechat: order already paid")
	// ErrOrderClosed: WeChat says the order is closed (ORDERCLOSED).
	ErrOrderClosed = errors.New("wechat: order closed")
	// ErrOrderNotExist: WeChat does not know the order (ORDERNOTEXIST, ORDER_NOT_EXIST, RESOURCE_NOT_EXISTS).
	ErrOrderNotExist = errors.New("wechat: order does not exist")
	// ErrTokenExpired: an access_token was invalid or expired (40001, 40014, 42001): refresh once, retry.
	ErrTokenExpired = errors.New("wechat: access token invalid or expired")
	// ErrInvalidCode: an OAuth or login code was invalid, used or expired (40029, 40163, 42003).
	ErrInvalidCode = errors.New("wechat: invalid or used code")

	// ErrNoBill: no bill exists for the day because it had no trade (v2 "No
	// Bill Exist", v3 NO_STATEMENT_EXIST): an empty day, not a failure.
	ErrNoBill = errors.New("wechat: no bill for the day (no trade)")
	// ErrBillNotReady: the day's bill is not made yet (v2 "Bill Creating",
	// v3 STATEMENT_CREATING): ask again later (after 10:00 the next day).
	ErrBillNotReady = errors.New("wechat: the bill is not ready yet")
	// ErrBillHash: a downloaded bill's SHA-1 is not the one WeChat gave with
	// its download URL: it was cut short or altered on the way. Apply again.
	ErrBillHash = errors.New("wechat: bill hash mismatch")
)

// Error is a failure reported by WeChat or on the way to it. Retryable tells
// a worker whether the same call may succeed later with the same parameters
// (network errors, HTTP 5xx, SYSTEMERROR, -1 busy …); everything else is final
// for this attempt and ends the order step with Code.
type Error struct {
	// API names the call, e.g. "pay/unifiedorder" or "v3/pay/transactions/jsapi".
	API string
	// HTTPStatus is the HTTP status when one was received, else 0.
	HTTPStatus int
	// Code is WeChat's code as text: v2 err_code or return_msg, v3 code,
	// or the platform errcode ("40029").
	Code string
	// Message is WeChat's human-readable message.
	Message string
	// Retryable is true when repeating the same call may succeed.
	Retryable bool
	// Err is the underlying cause (network error, decoding error), if any.
	Err error
}

func (e *Error) Error() string {
	msg := "wechat " + e.API
	if e.HTTPStatus != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.HTTPStatus)
	}
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Message != "" {
		msg += " " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is maps WeChat's codes, in every API family, onto the package sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOrderPaid:
		return e.Code == "ORDERPAID" || e.Code == "ORDER_PAID"
	case ErrOrderClosed:
		return e.Code == "ORDERCLOSED" || e.Code == "ORDER_CLOSED"
	case ErrOrderNotExist:
		return e.Code == "ORDERNOTEXIST" || e.Code == "ORDER_NOT_EXIST" || e.Code == "RESOURCE_NOT_EXISTS"
	case ErrTokenExpired:
		return e.Code == "40001" || e.Code == "40014" || e.Code == "42001"
	case ErrInvalidCode:
		return e.Code == "40029" || e.Code == "40163" || e.Code == "42003"
	case ErrSignature:
		return e.Code == "SIGNERROR" || e.Code == "SIGN_ERROR"
	case ErrNoBill:
		return e.Code == "No Bill Exist" || e.Code == "NO Bill Exist" || e.Code == "NO_STATEMENT_EXIST" || e.Code == "NO_BILL_EXIST"
	case ErrBillNotReady:
		return e.Code == "Bill Creating" || e.Code == "STATEMENT_CREATING" || e.Code == "BILL_CREATING"
	}
	return false
}

// IsRetryable reports whether err is worth retrying with the same parameters:
// an [*Error] marked Retryable, or a network-level failure (timeouts, refused
// connections) on the way to WeChat. A cancelled caller context is not retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if e, ok := errors.AsType[*Error](err); ok {
		if e.Retryable {
			return true
		}
		if e.Code != "" || e.HTTPStatus != 0 {
			return false
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// CodeOf returns WeChat's code carried by err, or "" when err is not an [*Error].
func CodeOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}
