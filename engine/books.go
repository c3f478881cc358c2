package engine

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// The daily books: for one day and one merchant, wxflow's store against
// WeChat's bill of the day. The books worker (workers/books) downloads and
// parses the bill and hands its rows over in wxflow's words ([BillTrade]):
// the engine knows nothing of WeChat's file. The store gathers what wxflow
// knows of those trades and of its own payments and refunds of the day
// (which the notifications and queries it received recorded), and
// [Reconcile] puts every trade and refund in exactly one bucket ([BooksKind]).

// Day is a day of the books: a calendar day in Beijing time (UTC+8), the day
// WeChat's bills cover, written 2006-01-02. A payment belongs to the day of
// its time at WeChat (time_end / success_time), whatever the clock of the
// machine that recorded it.
type Day string

// beijing is WeChat's clock: UTC+8, no daylight saving.
var beijing = time.FixedZone("CST", 8*3600)

// ParseDay reads a day written 2006-01-02.
func ParseDay(s string) (Day, error) {
	t, err := time.ParseInLocation(time.DateOnly, s, beijing)
	if err != nil || t.Format(time.DateOnly) != s {
		return "", fmt.Errorf("engine: %q is not a day (want 2006-01-02)", s)
	}
	return Day(s), nil
}

// DayOf is the Beijing day the instant t falls in.
func DayOf(t time.Time) Day { return Day(t.In(beijing).Format(time.DateOnly)) }

// Start is the day's first instant (00:00 Beijing), in UTC; the zero time
// for a Day that does not parse.
func (d Day) Start() time.Time {
	t, err := time.ParseInLocation(time.DateOnly, string(d), beijing)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// End is the next day's first instant: the day is [Start, End).
func (d Day) End() time.Time { return d.AddDays(1).Start() }

// AddDays is the day n days later (earlier when n < 0).
func (d Day) AddDays(n int) Day {
	return DayOf(d.Start().In(beijing).AddDate(0, 0, n).Add(12 * time.Hour))
}

// BillTrade is one row of WeChat's trade bill, in wxflow's words: a payment
// or a refund of one of the merchant's orders.
type BillTrade struct {
	Refund bool `json:"refund,omitempty"`
	// At is the row's time: the payment's success, or the refund's acceptance.
	At            time.Time `json:"at"`
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	OutRefundNo   string    `json:"out_refund_no,omitempty"`
	RefundID      string    `json:"refund_id,omitempty"`
	// AmountFen is the payment's total, or the refund asked for.
	AmountFen int64 `json:"amount_fen"`
	// FeeMilliFen is WeChat's fee in thousandths of a fen (its bills print
	// fees with five decimals of a yuan); negative on a refund, the fee given back.
	FeeMilliFen int64 `json:"fee_milli_fen"`
	// Status is WeChat's word when the bill was made: a payment's trade
	// state (SUCCESS, REVOKED), a refund's status (SUCCESS, PROCESSING …).
	Status string `json:"status"`
}

// key names a bill row: a payment by its out_trade_no, a refund by its out_refund_no.
func (t BillTrade) key() string {
	if t.Refund {
		return "refund:" + t.OutRefundNo
	}
	return "payment:" + t.OutTradeNo
}

// BooksKind is the bucket of one trade or refund of the day.
type BooksKind string

// The buckets. Matched and Later are no discrepancy.
const (
	BooksMatched         BooksKind = "matched"           // both agree
	BooksMissingInWxflow BooksKind = "missing_in_wxflow" // at WeChat, not in wxflow
	BooksMissingAtWechat BooksKind = "missing_at_wechat" // in wxflow, not at WeChat
	BooksAmountDiffers   BooksKind = "amount_differs"    // both have it, for different amounts
	BooksStateDiffers    BooksKind = "state_differs"     // both have it, in states that disagree
	// BooksLater is a refund wxflow asked for on the day that WeChat may
	// have accepted after midnight (it settled after the day ended): it is
	// looked for again in the next day's books, where it is matched or found
	// missing.
	BooksLater BooksKind = "later"
)

// BooksKinds lists the buckets, matched first, for tables and metrics.
var BooksKinds = []BooksKind{BooksMatched, BooksMissingInWxflow, BooksMissingAtWechat, BooksAmountDiffers, BooksStateDiffers, BooksLater}

// Discrepancy reports whether the bucket is a discrepancy.
func (k BooksKind) Discrepancy() bool { return k != BooksMatched && k != BooksLater }

// The repairs the books ask for.
const (
	RepairQuery = "query" // the order is replayed: its worker asks WeChat (payment or refund query) and records the answer
	RepairFlag  = "flag"  // the order is flagged (an alert) for a person
	RepairNone  = "none"  // nothing wxflow can do: no order of that number (see the line's detail)
)

// The flags the books raise: alerts, cleared by a person only (flags.go).
const (
	FlagBooksUnrecordedPayment = "books_unrecorded_payment" // WeChat's bill has a payment the order does not record, and no query can bring it in
	FlagBooksMissingAtWechat   = "books_missing_at_wechat"  // wxflow records a payment or refund WeChat's bill does not have
	FlagBooksAmountDiffers     = "books_amount_differs"     // WeChat's bill has another amount than wxflow
	FlagBooksStateDiffers      = "books_state_differs"      // WeChat's bill and wxflow disagree on a refund's outcome or a payment's number
	FlagBooksUnknownRefund     = "books_unknown_refund"     // WeChat's bill has a refund of the order wxflow never asked for
)

// BooksLine is one trade or refund of the day, in its bucket.
type BooksLine struct {
	Kind BooksKind `json:"kind"`
	// Trade is "payment" or "refund".
	Trade         string  `json:"trade"`
	OrderID       OrderID `json:"order_id,omitempty"`
	OutTradeNo    string  `json:"out_trade_no"`
	OutRefundNo   string  `json:"out_refund_no,omitempty"`
	TransactionID string  `json:"transaction_id,omitempty"`
	// WechatFen and WxflowFen are each side's amount (0 when it has none).
	WechatFen int64 `json:"wechat_fen"`
	WxflowFen int64 `json:"wxflow_fen"`
	// WechatState and WxflowState are each side's word: WeChat's status in
	// the bill; wxflow's order state, or its refund's state.
	WechatState string `json:"wechat_state,omitempty"`
	WxflowState string `json:"wxflow_state,omitempty"`
	FeeMilliFen int64  `json:"fee_milli_fen,omitempty"`
	// Repair is what the books do about it (RepairQuery, RepairFlag,
	// RepairNone); "" for no discrepancy. Flag names the flag raised.
	Repair string `json:"repair,omitempty"`
	Flag   string `json:"flag,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// BooksTotals are the day's sums on each side.
type BooksTotals struct {
	WechatPayments    int   `json:"wechat_payments"`
	WechatRefunds     int   `json:"wechat_refunds"`
	WechatPaidFen     int64 `json:"wechat_paid_fen"`
	WechatRefundedFen int64 `json:"wechat_refunded_fen"`
	// FeeMilliFen is WeChat's fees of the day, net of the fees refunds gave
	// back, in thousandths of a fen.
	FeeMilliFen       int64 `json:"fee_milli_fen"`
	WxflowPayments    int   `json:"wxflow_payments"`
	WxflowRefunds     int   `json:"wxflow_refunds"`
	WxflowPaidFen     int64 `json:"wxflow_paid_fen"`
	WxflowRefundedFen int64 `json:"wxflow_refunded_fen"`
}

// SettledMilliFen is what WeChat settles for the day: payments less refunds
// less the net fee, in thousandths of a fen.
func (t BooksTotals) SettledMilliFen() int64 {
	return (t.WechatPaidFen-t.WechatRefundedFen)*1000 - t.FeeMilliFen
}

// Books statuses.
const (
	BooksBalanced      = "balanced"      // every trade and refund matched (or carried to the next day)
	BooksUnbalanced    = "discrepancies" // at least one discrepancy
	BooksNoBillPending = "no_bill"       // WeChat has no bill yet (not ready): nothing compared
)

// BooksResult is the reconciliation of one day and merchant.
type BooksResult struct {
	Merchant string `json:"merchant"`
	Day      Day    `json:"day"`
	// Status is BooksBalanced or BooksUnbalanced.
	Status string `json:"status"`
	// Final is true when the bill was WeChat's last word on the day (made
	// after the day ended); a bill of a day still running is a preview.
	Final bool `json:"final"`
	// NoBill is true when WeChat said no bill exists (no trade that day).
	NoBill   bool   `json:"no_bill,omitempty"`
	BillSHA1 string `json:"bill_sha1,omitempty"`
	// Counts are the lines per bucket.
	Counts     map[BooksKind]int `json:"counts"`
	Totals     BooksTotals       `json:"totals"`
	Lines      []BooksLine       `json:"lines"`
	FirstRunAt time.Time         `json:"first_run_at"`
	RunAt      time.Time         `json:"run_at"`
	Runs       int               `json:"runs"`
}

// Discrepancies is the number of lines in a discrepancy bucket.
func (r BooksResult) Discrepancies() int {
	n := 0
	for k, c := range r.Counts {
		if k.Discrepancy() {
			n += c
		}
	}
	return n
}

// booksOrder is what the books need of an order.
type booksOrder struct {
	Order
	PaidAt *time.Time `db:"paid_at"`
}

// booksRefund is a refund and its order's out_trade_no.
type booksRefund struct {
	Refund
	OutTradeNo string `db:"out_trade_no"`
}

// booksFacts is what wxflow knows that the day's books need: the orders and
// refunds the bill names, wxflow's own payments and refunds of the day, and
// the keys found in other days' bills.
type booksFacts struct {
	orders  map[string]booksOrder  // by out_trade_no
	refunds map[string]booksRefund // by out_refund_no
	// dayPayments and dayRefunds are wxflow's payments of the day (by the
	// payment's time at WeChat) and its settled refunds asked that day, or
	// asked the day before and carried (BooksLater).
	dayPayments []string
	dayRefunds  []string
	// elsewhere are the keys (BillTrade.key) in another day's bill.
	elsewhere map[string]Day
}

// reconcile puts every row of the bill and every payment and refund wxflow
// has for the day in exactly one bucket, and says what to repair. It is
// pure: it reads nothing but its arguments.
func reconcile(merchant string, day Day, trades []BillTrade, f booksFacts) BooksResult {
	r := BooksResult{Merchant: merchant, Day: day, Counts: map[BooksKind]int{}}
	seen := map[string]bool{}
	add := func(l BooksLine) {
		r.Lines = append(r.Lines, l)
		r.Counts[l.Kind]++
	}
	for _, t := range trades {
		if t.Refund {
			r.Totals.WechatRefunds++
			r.Totals.WechatRefundedFen += t.AmountFen
		} else {
			r.Totals.WechatPayments++
			r.Totals.WechatPaidFen += t.AmountFen
		}
		r.Totals.FeeMilliFen += t.FeeMilliFen
		if seen[t.key()] {
			add(BooksLine{Kind: BooksStateDiffers, Trade: tradeWord(t.Refund), OutTradeNo: t.OutTradeNo, OutRefundNo: t.OutRefundNo,
				TransactionID: t.TransactionID, WechatFen: t.AmountFen, WechatState: t.Status, Repair: RepairNone,
				Detail: "twice in WeChat's bill"})
			continue
		}
		seen[t.key()] = true
		if t.Refund {
			add(refundLine(t, f))
		} else {
			add(paymentLine(t, f))
		}
	}
	for _, no := range f.dayPayments {
		o := f.orders[no]
		r.Totals.WxflowPayments++
		r.Totals.WxflowPaidFen += o.PaidFen
		if seen["payment:"+no] {
			continue
		}
		l := BooksLine{Kind: BooksMissingAtWechat, Trade: "payment", OrderID: o.ID, OutTradeNo: no, TransactionID: o.TransactionID,
			WxflowFen: o.PaidFen, WxflowState: string(o.State)}
		if other, ok := f.elsewhere["payment:"+no]; ok {
			// Paid before the migration that keeps WeChat's time: the
			// notification's time stood in, and it was the other day's.
			l.Kind, l.Detail = BooksMatched, "in the bill of "+string(other)
		} else {
			l.Repair, l.Flag = RepairFlag, FlagBooksMissingAtWechat
			l.Detail = "wxflow records this payment; WeChat's bill of the day does not have it"
		}
		add(l)
	}
	for _, no := range f.dayRefunds {
		rf := f.refunds[no]
		r.Totals.WxflowRefunds++
		r.Totals.WxflowRefundedFen += rf.AmountFen
		if seen["refund:"+no] {
			continue
		}
		o := f.orders[rf.OutTradeNo]
		l := BooksLine{Kind: BooksMissingAtWechat, Trade: "refund", OrderID: rf.OrderID, OutTradeNo: rf.OutTradeNo, OutRefundNo: no,
			TransactionID: o.TransactionID, WxflowFen: rf.AmountFen, WxflowState: string(rf.State)}
		switch other, ok := f.elsewhere["refund:"+no]; {
		case ok:
			l.Kind, l.Detail = BooksMatched, "in the bill of "+string(other)
		case !rf.UpdatedAt.Before(day.End()):
			l.Kind, l.Detail = BooksLater, "settled after the day ended: WeChat may have accepted it after midnight; looked for in the next day's books"
		default:
			l.Repair, l.Flag = RepairFlag, FlagBooksMissingAtWechat
			l.Detail = "wxflow records this refund settled; WeChat's bill of the day does not have it"
		}
		add(l)
	}
	slices.SortStableFunc(r.Lines, func(a, b BooksLine) int {
		return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), cmp.Compare(a.OutTradeNo, b.OutTradeNo),
			cmp.Compare(a.Trade, b.Trade), cmp.Compare(a.OutRefundNo, b.OutRefundNo))
	})
	r.Status = BooksBalanced
	if r.Discrepancies() > 0 {
		r.Status = BooksUnbalanced
	}
	return r
}

// kindRank orders lines: discrepancies first, in BooksKinds' order, then the rest.
func kindRank(k BooksKind) int {
	i := slices.Index(BooksKinds, k)
	if k.Discrepancy() {
		return i
	}
	return len(BooksKinds) + i
}

func tradeWord(refund bool) string {
	if refund {
		return "refund"
	}
	return "payment"
}

// paymentLine buckets a payment row of the bill.
func paymentLine(t BillTrade, f booksFacts) BooksLine {
	l := BooksLine{Trade: "payment", OutTradeNo: t.OutTradeNo, TransactionID: t.TransactionID, WechatFen: t.AmountFen,
		WechatState: t.Status, FeeMilliFen: t.FeeMilliFen}
	o, ok := f.orders[t.OutTradeNo]
	if !ok {
		l.Kind, l.Repair = BooksMissingInWxflow, RepairNone
		l.Detail = "no order of this out_trade_no in wxflow: look at the merchant's other systems"
		return l
	}
	l.OrderID, l.WxflowState, l.WxflowFen = o.ID, string(o.State), o.PaidFen
	paid := rule(o.State).paid
	switch {
	case t.Status != "SUCCESS":
		// A reversed payment (REVOKED): wxflow must not hold it paid.
		if paid {
			l.Kind, l.Repair, l.Flag = BooksStateDiffers, RepairFlag, FlagBooksStateDiffers
			l.Detail = "WeChat's bill says " + clip(t.Status) + "; wxflow holds the order paid"
			return l
		}
		l.Kind = BooksMatched
	case !paid:
		l.Kind = BooksMissingInWxflow
		if _, replayable := replayable(o.State, false); replayable {
			l.Repair = RepairQuery
			l.Detail = "paid at WeChat, " + string(o.State) + " in wxflow (a notification lost): the order is queried"
		} else {
			l.Repair, l.Flag = RepairFlag, FlagBooksUnrecordedPayment
			l.Detail = "paid at WeChat, " + string(o.State) + " in wxflow: no query moves it; refund the payer or settle by hand"
		}
	case o.PaidFen != t.AmountFen:
		l.Kind, l.Repair, l.Flag = BooksAmountDiffers, RepairFlag, FlagBooksAmountDiffers
		l.Detail = fmt.Sprintf("WeChat's bill says %d fen, wxflow %d", t.AmountFen, o.PaidFen)
	case o.TransactionID != t.TransactionID:
		l.Kind, l.Repair, l.Flag = BooksStateDiffers, RepairFlag, FlagBooksStateDiffers
		l.Detail = "WeChat's bill names transaction " + clip(t.TransactionID) + ", wxflow " + o.TransactionID
	default:
		l.Kind = BooksMatched
	}
	return l
}

// refundLine buckets a refund row of the bill.
func refundLine(t BillTrade, f booksFacts) BooksLine {
	l := BooksLine{Trade: "refund", OutTradeNo: t.OutTradeNo, OutRefundNo: t.OutRefundNo, TransactionID: t.TransactionID,
		WechatFen: t.AmountFen, WechatState: t.Status, FeeMilliFen: t.FeeMilliFen}
	rf, ok := f.refunds[t.OutRefundNo]
	if !ok {
		l.Kind = BooksMissingInWxflow
		if o, ok := f.orders[t.OutTradeNo]; ok {
			l.OrderID, l.Repair, l.Flag = o.ID, RepairFlag, FlagBooksUnknownRefund
			l.Detail = "WeChat refunded this order; wxflow never asked for this refund"
		} else {
			l.Repair, l.Detail = RepairNone, "no order of this out_trade_no in wxflow: look at the merchant's other systems"
		}
		return l
	}
	o := f.orders[rf.OutTradeNo]
	l.OrderID, l.WxflowFen, l.WxflowState = rf.OrderID, rf.AmountFen, string(rf.State)
	settled := t.Status == "SUCCESS"
	processing := t.Status == "PROCESSING"
	closed := t.Status == "REFUNDCLOSE" || t.Status == "CLOSED"
	switch {
	case rf.OutTradeNo != t.OutTradeNo:
		l.Kind, l.Repair, l.Flag = BooksStateDiffers, RepairFlag, FlagBooksStateDiffers
		l.Detail = "WeChat's bill has this refund for order " + clip(t.OutTradeNo) + ", wxflow for " + rf.OutTradeNo
	case rf.AmountFen != t.AmountFen:
		l.Kind, l.Repair, l.Flag = BooksAmountDiffers, RepairFlag, FlagBooksAmountDiffers
		l.Detail = fmt.Sprintf("WeChat's bill says %d fen, wxflow %d", t.AmountFen, rf.AmountFen)
	case rf.State == RefundSucceeded && (settled || processing):
		// A bill is a snapshot: a refund processing when it was made may
		// have settled since, as wxflow says.
		l.Kind = BooksMatched
	case rf.State == RefundPending && processing, rf.State == RefundFailed && closed:
		l.Kind = BooksMatched
	case rf.State == RefundPending && settled && o.State == Refunding:
		l.Kind, l.Repair = BooksStateDiffers, RepairQuery
		l.Detail = "settled at WeChat, pending in wxflow (a notification lost): the refund is queried"
	default:
		l.Kind, l.Repair, l.Flag = BooksStateDiffers, RepairFlag, FlagBooksStateDiffers
		l.Detail = "WeChat's bill says " + clip(t.Status) + ", wxflow's refund is " + string(rf.State)
	}
	return l
}

// clip bounds a value of the bill quoted in a line's detail, which a repair
// writes into the order's history.
func clip(s string) string {
	const most = 64
	if len(s) <= most {
		return s
	}
	r := []rune(s[:most])
	return string(r[:len(r)-1]) + "…"
}
