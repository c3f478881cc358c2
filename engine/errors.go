package engine

import "errors"

// RefusalCode says why a command was not applied (Result.Code). It is part of
// the engine's contract: the api package maps each code to an HTTP status, the
// history and the refusal metrics show it, and shops read it in answers.
type RefusalCode string

// The refusals. Each is a recorded no-op: nothing but a flag is written.
const (
	CodeDuplicateCommand   RefusalCode = "duplicate_command"    // this command id was seen before
	CodeExists             RefusalCode = "exists"               // the same create again: the existing order
	CodeConflict           RefusalCode = "conflict"             // same id / out_trade_no / out_refund_no, other content
	CodeInvalidState       RefusalCode = "invalid_state"        // the lifecycle does not allow it now
	CodeDuplicate          RefusalCode = "duplicate"            // already done (a repeated notification, refund result…)
	CodeAmountMismatch     RefusalCode = "amount_mismatch"      // WeChat's amount differs from the order's; flagged
	CodePaidAfterClose     RefusalCode = "paid_after_close"     // a payment for a closed order; flagged for a refund
	CodeOverRefund         RefusalCode = "over_refund"          // more than remains of the payment
	CodeRefundInProgress   RefusalCode = "refund_in_progress"   // never answered since refunds queue (refundqueue.go); kept for shops that match it
	CodeTooManyRefunds     RefusalCode = "too_many_refunds"     // the order has MaxRefundsPerOrder refunds already (WeChat's limit)
	CodeCloseRequested     RefusalCode = "close_requested"      // closing is already under way
	CodeUnknownOrder       RefusalCode = "unknown_order"        // no such order (or no such refund of it)
	CodeNothingToReplay    RefusalCode = "nothing_to_replay"    // the order rests: no step is pending
	CodeStale              RefusalCode = "stale"                // about a state the order has left
	CodeNotFlagged         RefusalCode = "not_flagged"          // a resolution of a flag the order does not have
	CodeInvalid            RefusalCode = "invalid"              // malformed command
	CodeForbiddenOrigin    RefusalCode = "forbidden_origin"     // its publisher may not send it (intake only; never recorded)
	CodeMerchantNotAllowed RefusalCode = "merchant_not_allowed" // a shop's create for a merchant it may not act for
)

// refusal is a command that does not fit; flag, when set, is still raised
// on the order (amount mismatch, payment after close), beside its others.
type refusal struct {
	code   RefusalCode
	reason string
	flag   string
}

// ErrNotFound: no such order or refund.
var ErrNotFound = errors.New("engine: not found")

// Errors of the store that callers handle: wait and try again, or tell an
// operator. Nothing was written when Apply returns one of them.
var (
	// ErrStoreBusy: another writer held the database past the busy timeout.
	ErrStoreBusy = errors.New("engine: store busy (locked by another writer)")
	// ErrStoreFull: the disk holding the database is full.
	ErrStoreFull = errors.New("engine: store full (no space left for the database)")
)
