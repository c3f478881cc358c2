package engine

import (
	"fmt"
	"time"
)

// The command-id schemes. A command id is its idempotency key (Nats-Msg-Id,
// and the engine's record of commands applied): the same request must give
// the same id, so that a re-sent copy is dropped by JetStream inside its
// duplicate window and refused as duplicate_command after it. Each scheme
// names what makes two requests the same. These functions are the only
// place the ids are built.

// CreateCommandID is a shop's create: the order and the fingerprint of the
// request (its first 16 characters), so the same request is one command and
// another request for the same order id is another (refused as a conflict).
func CreateCommandID(id OrderID, requestHash string) string {
	return "create:" + string(id) + ":" + requestHash[:min(16, len(requestHash))]
}

// RefundCommandID is a shop's refund: the order, the refund's out_refund_no
// and its amount.
func RefundCommandID(id OrderID, outRefundNo string, amountFen int64) string {
	return fmt.Sprintf("refund:%s:%s:%d", id, outRefundNo, amountFen)
}

// ShopCloseCommandID is a shop's close: one per order, however often asked.
func ShopCloseCommandID(id OrderID) string { return "close:" + string(id) + ":shop" }

// NotifyCommandID is a payment WeChat reported (a notification or a query):
// the order, WeChat's transaction and the amount, so every copy of one
// notification is one command.
func NotifyCommandID(id OrderID, transactionID string, amountFen int64) string {
	return fmt.Sprintf("notify:%s:%s:%d", id, transactionID, amountFen)
}

// NotFinalCommandID flags an order whose verified notification said it was
// not paid: one flag per out_trade_no.
func NotFinalCommandID(outTradeNo string) string { return "notfinal:" + outTradeNo }

// RefundResultCommandID is WeChat's final word on a refund: the refund and
// the status WeChat gave.
func RefundResultCommandID(outRefundNo, status string) string {
	return "refunded:" + outRefundNo + ":" + status
}

// RefundNoticeCommandID is the replay a v2 refund notification asks for
// (its req_info is not authenticated: the refund worker asks WeChat, and the
// answer settles the refund). It is one per delivery (at is when it came):
// a genuine notification after a forged one must still be heard, and a
// replay is harmless, so there is nothing to de-duplicate.
func RefundNoticeCommandID(outRefundNo, status string, at time.Time) string {
	return fmt.Sprintf("refund-notice:%s:%s:%d", outRefundNo, status, at.UnixNano())
}

// RefundAbnormalCommandID flags an order whose refund WeChat reported
// abnormal: one flag per refund.
func RefundAbnormalCommandID(outRefundNo string) string { return "refund-abnormal:" + outRefundNo }

// StepCommandID is what a worker sends after handling an event:
// <verb>:<event id>, so a redelivered event re-sends the same command.
func StepCommandID(verb Verb, eventID string) string { return string(verb) + ":" + eventID }

// DeadLetterCommandID flags an order whose event a worker dead-lettered. Each
// dead letter is its own command (at is when it was dead-lettered).
func DeadLetterCommandID(worker string, id OrderID, at time.Time) string {
	return fmt.Sprintf("flag:%s:%s:%d", worker, id, at.UnixNano())
}

// ExpireCommandID is the expirer's close of an unpaid order: one per order.
func ExpireCommandID(id OrderID) string { return "expire:" + string(id) }

// ReconcileCommandID is the reconciler's replay of a quiet order in the round
// that started at at: one per order and round.
func ReconcileCommandID(id OrderID, at time.Time) string {
	return fmt.Sprintf("reconcile:%s:%d", id, at.UnixNano())
}

// SendRefundCommandID is the refund queue's send of a refund in the round
// that started at at: one per refund and round (a send applied twice is
// refused by the state: the refund is no longer queued).
func SendRefundCommandID(outRefundNo string, at time.Time) string {
	return fmt.Sprintf("send_refund:%s:%d", outRefundNo, at.UnixNano())
}

// AdminCommandID is a person's one-off command (admin page, API or CLI): a
// new id each time, since a person asking twice means it.
func AdminCommandID(verb Verb) string { return NewID(string(verb)) }

// BooksReplayCommandID is the books' replay of an order WeChat's bill of
// day shows paid (or refunded) and wxflow does not, in the run at at: one
// per order, day and run (a replay is harmless, and a later run may need
// to ask again).
func BooksReplayCommandID(id OrderID, day Day, at time.Time) string {
	return fmt.Sprintf("books-replay:%s:%s:%d", id, day, at.UnixNano())
}

// BooksFlagCommandID is the books' flag of a discrepancy: one per flag,
// order and trade (key: its out_trade_no or out_refund_no), however often
// the day is run.
func BooksFlagCommandID(flag string, id OrderID, key string) string {
	return "books-flag:" + flag + ":" + string(id) + ":" + key
}
