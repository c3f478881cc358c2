package engine

import (
	"strings"
	"testing"
	"time"
)

// TestActionsFollowDecide: ActionsOf offers an action exactly when decide
// accepts its command for an order in that state (as tableFacts stands
// there), so the admin page shows no button the engine refuses and hides
// none it accepts. A refund is offered for what remains, and not once
// nothing remains.
func TestActionsFollowDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range AllStates {
		for _, settled := range []bool{false, true} {
			f := tableFacts(s, VerbClose, settled)
			a := ActionsOf(f.order.Order, f.refunds)
			if want := max(f.order.PaidFen-committedFen(f.refunds), 0); a.RefundableFen != want {
				t.Errorf("%s: refundable %d, want %d", s, a.RefundableFen, want)
			}
			amount := max(a.RefundableFen, 1)
			for _, tc := range []struct {
				name    string
				offered bool
				cmd     Command
			}{
				{"close", a.Close, Command{Verb: VerbClose, Close: &CloseAsk{}}},
				{"replay", a.Replay, Command{Verb: VerbReplay}},
				{"refund", a.Refund, Command{Verb: VerbRefund, Refund: &RefundAsk{OutRefundNo: "r2", AmountFen: amount}}},
			} {
				cmd := tc.cmd
				cmd.ID, cmd.OrderID = "c1", "o1"
				got := outcome(decide(tableFacts(s, cmd.Verb, settled), cmd, now))
				accepted := !strings.HasPrefix(got, "!") && !strings.HasPrefix(got, "error")
				if accepted != tc.offered {
					t.Errorf("%s in %s (settled before: %v): offered %v, decide says %s", tc.name, s, settled, tc.offered, got)
				}
			}
		}
	}
	// Nothing left to refund: no refund offered, though the state allows one.
	o := Order{State: Refunded, PaidFen: 100, RefundedFen: 60}
	held := []Refund{{AmountFen: 60, State: RefundSucceeded, Seq: 1}, {AmountFen: 30, State: RefundFailed, Seq: 2}, {AmountFen: 40, State: RefundQueued, Seq: 3}}
	if a := ActionsOf(o, held); a.Refund || a.RefundableFen != 0 || a.Close {
		t.Errorf("an order whose refunds hold its payment: %+v", a)
	}
	// Fifty refunds: no more, though money remains.
	var fifty []Refund
	for i := range MaxRefundsPerOrder {
		fifty = append(fifty, Refund{AmountFen: 1, State: RefundSucceeded, Seq: i + 1})
	}
	if a := ActionsOf(Order{State: Refunded, PaidFen: 100, RefundedFen: 50}, fifty); a.Refund || a.RefundableFen != 50 {
		t.Errorf("an order with fifty refunds: %+v", a)
	}
}
