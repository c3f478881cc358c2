package pay

import (
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestTradeStateOf: every trade_state of v2 and v3 (one spelling), and
// words wxflow does not know, which must be neither paid nor closed.
func TestTradeStateOf(t *testing.T) {
	tests := []struct {
		word         string
		want         TradeState
		paid, closed bool
	}{
		{"SUCCESS", TradeSuccess, true, false},
		{"REFUND", TradeRefunded, true, false},
		{"NOTPAY", TradeNotPaid, false, false},
		{"CLOSED", TradeClosed, false, true},
		{"REVOKED", TradeRevoked, false, true},
		{"USERPAYING", TradeUserPaying, false, false},
		{"PAYERROR", TradePayError, false, false},
		{"", TradeUnknown, false, false},
		{"ACCEPT", TradeUnknown, false, false},
		{"success", TradeUnknown, false, false},
		{" SUCCESS", TradeUnknown, false, false},
		{"UNKNOWN", TradeUnknown, false, false},
		{"REFUNDCLOSE", TradeUnknown, false, false},
	}
	for _, tc := range tests {
		got := tradeStateOf(tc.word)
		if got != tc.want || got.Paid() != tc.paid || got.Closed() != tc.closed {
			t.Errorf("tradeStateOf(%q) = %v (paid %v, closed %v), want %v (paid %v, closed %v)",
				tc.word, got, got.Paid(), got.Closed(), tc.want, tc.paid, tc.closed)
		}
		if tc.want != TradeUnknown && got.String() != tc.word {
			t.Errorf("%v.String() = %q, want WeChat's word %q", got, got.String(), tc.word)
		}
	}
	if s := TradeState(-1).String(); s != "UNKNOWN" {
		t.Errorf("an out-of-range state prints %q", s)
	}
	var zero TradeState
	if zero != TradeUnknown || zero.Paid() {
		t.Error("the zero TradeState must be unknown and not paid")
	}
}

// TestRefundStateOf: every refund status of v2 and v3 in its own
// generation's spelling; the other generation's spelling and other words
// are unknown, which is never settled.
func TestRefundStateOf(t *testing.T) {
	tests := []struct {
		api     API
		word    string
		want    RefundState
		settled bool
	}{
		{"v2", "SUCCESS", RefundSuccess, true},
		{"v2", "PROCESSING", RefundProcessing, false},
		{"v2", "REFUNDCLOSE", RefundClosed, true},
		{"v2", "CHANGE", RefundAbnormal, false},
		{"v3", "SUCCESS", RefundSuccess, true},
		{"v3", "PROCESSING", RefundProcessing, false},
		{"v3", "CLOSED", RefundClosed, true},
		{"v3", "ABNORMAL", RefundAbnormal, false},
		{"v2", "CLOSED", RefundUnknown, false},
		{"v2", "ABNORMAL", RefundUnknown, false},
		{"v3", "REFUNDCLOSE", RefundUnknown, false},
		{"v3", "CHANGE", RefundUnknown, false},
		{"v2", "", RefundUnknown, false},
		{"v3", "", RefundUnknown, false},
		{"v3", "success", RefundUnknown, false},
		{"v3", "UNKNOWN", RefundUnknown, false},
		{"v4", "SUCCESS", RefundUnknown, false},
		{"", "SUCCESS", RefundUnknown, false},
	}
	for _, tc := range tests {
		got := refundStateOf(tc.api, tc.word)
		if got != tc.want || got.Settled() != tc.settled {
			t.Errorf("refundStateOf(%s, %q) = %v (settled %v), want %v (settled %v)", tc.api, tc.word, got, got.Settled(), tc.want, tc.settled)
		}
		if tc.api == "v3" && tc.want != RefundUnknown && got.String() != tc.word {
			t.Errorf("%v.String() = %q, want v3's word %q", got, got.String(), tc.word)
		}
	}
	if s := RefundState(99).String(); s != "UNKNOWN" {
		t.Errorf("an out-of-range state prints %q", s)
	}
	var zero RefundState
	if zero != RefundUnknown || zero.Settled() {
		t.Error("the zero RefundState must be unknown and not settled")
	}
}

// TestAnswersRead: each generation's answer becomes the same Transaction or
// RefundStatus, WeChat's word kept for the logs.
func TestAnswersRead(t *testing.T) {
	at := time.Date(2023, 11, 15, 6, 40, 0, 0, time.FixedZone("CST", 8*3600))
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"v2 query", fromV2Query(v2.OrderQueryResponse{MchID: "m1", AppID: "wx1", TradeState: "REFUND", OutTradeNo: "wx-1", TransactionID: "4200", TotalFen: 1250, OpenID: "o1", TimeEnd: at}),
			Transaction{OutTradeNo: "wx-1", State: TradeRefunded, RawState: "REFUND", TransactionID: "4200", AmountFen: 1250, OpenID: "o1", PaidAt: at,
				MchID: "m1", AppID: "wx1"}},
		{"v3 query", fromV3Transaction(v3.Transaction{TradeState: "SUCCESS", OutTradeNo: "wx-1", TransactionID: "4200",
			SuccessTime: "2023-11-15T06:40:00+08:00", Amount: v3.Amount{Total: 1250}, Payer: v3.Payer{OpenID: "o1"}}),
			Transaction{OutTradeNo: "wx-1", State: TradeSuccess, RawState: "SUCCESS", TransactionID: "4200", AmountFen: 1250, OpenID: "o1", PaidAt: at}},
		{"v3 unknown", fromV3Transaction(v3.Transaction{TradeState: "ACCEPT", OutTradeNo: "wx-1"}),
			Transaction{OutTradeNo: "wx-1", State: TradeUnknown, RawState: "ACCEPT"}},
		{"v3 refund", fromV3Refund(v3.Refund{RefundID: "5030", OutRefundNo: "rf-1", Status: "ABNORMAL"}),
			RefundStatus{OutRefundNo: "rf-1", RefundID: "5030", State: RefundAbnormal, RawState: "ABNORMAL"}},
	}
	for _, tc := range tests {
		if g, ok := tc.got.(Transaction); ok {
			w := tc.want.(Transaction)
			if !g.PaidAt.Equal(w.PaidAt) {
				t.Errorf("%s: paid at %v, want %v", tc.name, g.PaidAt, w.PaidAt)
			}
			g.PaidAt, w.PaidAt = time.Time{}, time.Time{}
			tc.got, tc.want = g, w
		}
		if tc.got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, tc.got, tc.want)
		}
	}
}
