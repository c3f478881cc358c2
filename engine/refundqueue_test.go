package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// queueFacts is what Apply would load for a refund command about order o1
// (paid 100 fen) in state s with these refunds: the refund the command
// names, if any, and the order's refunds. The gap is a minute.
func queueFacts(s State, cmd Command, refunds ...Refund) facts {
	o := orderRow{Order: Order{ID: "o1", Merchant: "m", OutTradeNo: "OTN", AmountFen: 100, PaidFen: 100, TransactionID: "t1", State: s}}
	f := facts{order: &o, refunds: refunds, refundGap: time.Minute}
	no := ""
	switch {
	case cmd.Refund != nil:
		no = cmd.Refund.OutRefundNo
	case cmd.Refunded != nil:
		no = cmd.Refunded.OutRefundNo
	}
	for _, r := range refunds {
		if r.State == RefundSucceeded {
			o.RefundedFen += r.AmountFen
		}
		if r.OutRefundNo == no {
			f.refund = &r
		}
	}
	return f
}

// refundsAfter writes the order's refunds as a change leaves them
// (no:state[:code]) and when the next is due ("due -" when none is, else
// relative to now).
func refundsAfter(f facts, ch *change, now time.Time) string {
	refunds := append([]Refund(nil), f.refunds...)
	for _, r := range ch.setRefunds {
		for i := range refunds {
			if refunds[i].OutRefundNo == r.OutRefundNo {
				refunds[i] = r
			}
		}
	}
	if ch.newRefund != nil {
		refunds = append(refunds, *ch.newRefund)
	}
	var out []string
	for _, r := range refunds {
		s := fmt.Sprintf("%s:%s", r.OutRefundNo, r.State)
		if r.ErrorCode != "" {
			s += ":" + r.ErrorCode + "/" + r.ErrorMessage
		}
		if (r.State == RefundQueued) != (r.SentAt == nil) {
			s += ":sent_at?"
		}
		out = append(out, s)
	}
	due := "due -"
	if ch.refundDue != nil {
		due = "due " + ch.refundDue.Sub(now).String()
	}
	return strings.Join(append(out, due), " ")
}

// TestDecideRefundQueue: refunds are queued, never refused for one in
// flight; queued, pending and succeeded ones count against the payment; at
// most 50 of an order; one at WeChat at a time, the next a gap after the one
// before settled; a repeat is the same refund, another amount a conflict.
func TestDecideRefundQueue(t *testing.T) {
	now := tableNow
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	refund := func(no string, fen int64) Command {
		return Command{ID: "c1", OrderID: "o1", Verb: VerbRefund, Refund: &RefundAsk{OutRefundNo: no, AmountFen: fen}}
	}
	result := func(no string, ok bool, code, msg string) Command {
		return Command{ID: "c1", OrderID: "o1", Verb: VerbRefunded, Refunded: &RefundDone{OutRefundNo: no, Succeeded: ok, Code: code, Message: msg}}
	}
	send := func(no string) Command {
		return Command{ID: "c1", OrderID: "o1", Verb: VerbSendRefund, Send: &RefundSend{OutRefundNo: no}}
	}
	queued := func(no string, seq int, fen int64) Refund {
		return Refund{OutRefundNo: no, OrderID: "o1", AmountFen: fen, State: RefundQueued, Seq: seq}
	}
	pending := func(no string, seq int, fen int64) Refund {
		return Refund{OutRefundNo: no, OrderID: "o1", AmountFen: fen, State: RefundPending, Seq: seq, SentAt: ago(time.Hour)}
	}
	settled := func(no string, seq int, fen int64, st RefundState, when time.Duration) Refund {
		return Refund{OutRefundNo: no, OrderID: "o1", AmountFen: fen, State: st, Seq: seq, SentAt: ago(time.Hour), SettledAt: ago(when)}
	}
	fifty := make([]Refund, 50)
	for i := range fifty {
		fifty[i] = settled(fmt.Sprintf("f%d", i), i+1, 1, RefundSucceeded, time.Hour)
	}
	tests := []struct {
		name    string
		state   State
		refunds []Refund
		cmd     Command
		want    string // the events, or !code
		after   string // the refunds and the next due, when applied
	}{
		{"the first refund is sent at once", Notified, nil, refund("r1", 40),
			"refund_queued→notified refunding→refunding", "r1:pending due -"},
		{"a refund while one is at WeChat is queued, not refused", Refunding, []Refund{pending("r1", 1, 40)}, refund("r2", 30),
			"refund_queued→refunding", "r1:pending r2:queued due -"},
		{"a third queues behind the second", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)}, refund("r3", 30),
			"refund_queued→refunding", "r1:pending r2:queued r3:queued due -"},
		{"queued and pending refunds count against the payment", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)}, refund("r3", 31),
			"!over_refund", ""},
		{"succeeded ones count too", Refunded, []Refund{settled("r1", 1, 60, RefundSucceeded, time.Hour), queued("r2", 2, 30)}, refund("r3", 11),
			"!over_refund", ""},
		{"a failed refund frees its amount", Notified, []Refund{settled("r1", 1, 100, RefundFailed, time.Hour)}, refund("r2", 100),
			"refund_queued→notified refunding→refunding", "r1:failed r2:pending due -"},
		{"the 51st refund of an order", Refunded, fifty, refund("r51", 1), "!too_many_refunds", ""},
		{"a refund less than the gap after the last settled waits", Refunded, []Refund{settled("r1", 1, 10, RefundSucceeded, 20*time.Second)}, refund("r2", 10),
			"refund_queued→refunded", "r1:succeeded r2:queued due 40s"},
		{"the same refund again", Refunding, []Refund{pending("r1", 1, 40)}, refund("r1", 40), "!duplicate", ""},
		{"the same out_refund_no, another amount", Refunding, []Refund{pending("r1", 1, 40)}, refund("r1", 41), "!conflict", ""},
		{"a refund of an unpaid order", Signed, nil, refund("r1", 1), "!invalid_state", ""},
		{"a refund settles: the next is due a gap later", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)}, result("r1", true, "", ""),
			"refunded→refunded", "r1:succeeded r2:queued due 1m0s"},
		{"WeChat refuses one: its code and message are kept, the next is due", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)},
			result("r1", false, "USER_ACCOUNT_ABNORMAL", "退款请求失败"),
			"refund_failed→notified", "r1:failed:USER_ACCOUNT_ABNORMAL/退款请求失败 r2:queued due 1m0s"},
		{"WeChat closes one (no message)", Refunding, []Refund{pending("r1", 1, 40)}, result("r1", false, "CLOSED", ""),
			"refund_failed→notified", "r1:failed:CLOSED/WeChat closed the refund due -"},
		{"a result of a refund still queued", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)}, result("r2", true, "", ""),
			"!invalid_state", ""},
		{"the send of a due refund", Refunded, []Refund{settled("r1", 1, 40, RefundSucceeded, 2*time.Minute), queued("r2", 2, 30), queued("r3", 3, 30)}, send("r2"),
			"refunding→refunding", "r1:succeeded r2:pending r3:queued due -"},
		{"after a failure the next still goes", Notified, []Refund{settled("r1", 1, 40, RefundFailed, 2*time.Minute), queued("r2", 2, 30)}, send("r2"),
			"refunding→refunding", "r1:failed r2:pending due -"},
		{"a send before the gap has passed", Refunded, []Refund{settled("r1", 1, 40, RefundSucceeded, 30*time.Second), queued("r2", 2, 30)}, send("r2"),
			"!stale", ""},
		{"a send of a refund that is not next", Refunded, []Refund{settled("r1", 1, 40, RefundSucceeded, time.Hour), queued("r2", 2, 30), queued("r3", 3, 30)}, send("r3"),
			"!stale", ""},
		{"a send while one is at WeChat", Refunding, []Refund{pending("r1", 1, 40), queued("r2", 2, 30)}, send("r2"), "!stale", ""},
		{"a send replayed after it was sent", Refunding, []Refund{pending("r2", 2, 30)}, send("r2"), "!stale", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := queueFacts(tc.state, tc.cmd, tc.refunds...)
			ch, r, err := decide(f, tc.cmd, now)
			if got := outcome(ch, r, err); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if ch == nil {
				return
			}
			if got := refundsAfter(f, ch, now); got != tc.after {
				t.Errorf("refunds after: %s, want %s", got, tc.after)
			}
			for _, ev := range ch.events {
				if ev.Refund == nil {
					t.Errorf("event %s carries no refund", ev.Type)
				}
			}
		})
	}
}

// TestDecideRefundQueueWithoutGap: with no gap (a test's, or a scaled
// clock's), the next queued refund goes in the transaction that settled the
// one before.
func TestDecideRefundQueueWithoutGap(t *testing.T) {
	sent := tableNow.Add(-time.Second)
	cmd := Command{ID: "c1", OrderID: "o1", Verb: VerbRefunded, Refunded: &RefundDone{OutRefundNo: "r1", Succeeded: true}}
	f := queueFacts(Refunding, cmd, Refund{OutRefundNo: "r1", OrderID: "o1", AmountFen: 40, State: RefundPending, Seq: 1, SentAt: &sent},
		Refund{OutRefundNo: "r2", OrderID: "o1", AmountFen: 30, State: RefundQueued, Seq: 2})
	f.refundGap = 0
	ch, r, err := decide(f, cmd, tableNow)
	if got := outcome(ch, r, err); got != "refunded→refunded refunding→refunding" {
		t.Fatalf("got %s", got)
	}
	if got := refundsAfter(f, ch, tableNow); got != "r1:succeeded r2:pending due -" {
		t.Errorf("refunds after: %s", got)
	}
	if ch.order.RefundedFen != 40 {
		t.Errorf("refunded %d fen, want 40", ch.order.RefundedFen)
	}
}
