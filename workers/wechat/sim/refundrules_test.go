package sim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// simClock is the simulator's time in a test, moved by hand.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *simClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestRefundRules: WeChat takes a new refund of an order only a minute (on
// the simulator's time scale: 60 ms at 0.001) after the order's last one,
// answering FREQUENCY_LIMITED (retryable) before, at most 50 refunds of an
// order (the 51st: ERROR / INVALID_REQUEST, final), and a refund a test
// told it to refuse with the code and message given; the same refund asked
// again is never refused for its timing.
func TestRefundRules(t *testing.T) {
	for _, api := range []string{"v2", "v3"} {
		t.Run(api, func(t *testing.T) {
			clk := &simClock{now: time.Now()}
			w := newWorld(t, sim.Config{Now: clk.Now, RefundDelay: time.Hour})
			ctx := context.Background()
			otn := "TR-" + api
			refund := func(no string, fen int64) error {
				if api == "v2" {
					_, err := w.v2.Refund(ctx, v2.RefundRequest{OutTradeNo: otn, OutRefundNo: no, TotalFen: 1000, RefundFen: fen})
					return err
				}
				_, err := w.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: otn, OutRefundNo: no, TotalFen: 1000, RefundFen: fen})
				return err
			}
			if api == "v2" {
				uo, err := w.v2.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "b", OutTradeNo: otn, TotalFen: 1000, OpenID: "o", ClientIP: "127.0.0.1",
					NotifyURL: w.shop.URL + "/v2/pay", TradeType: "JSAPI"})
				if err != nil {
					t.Fatal(err)
				}
				w.pay(t, uo.PrepayID)
			} else {
				id, err := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: otn, TotalFen: 1000, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
				if err != nil {
					t.Fatal(err)
				}
				w.pay(t, id)
			}
			status := func(err error) int {
				if e, ok := errors.AsType[*wechat.Error](err); ok {
					return e.HTTPStatus
				}
				return 0
			}

			if err := refund("RR-1", 10); err != nil {
				t.Fatalf("first refund: %v", err)
			}
			err := refund("RR-2", 10)
			if wechat.CodeOf(err) != "FREQUENCY_LIMITED" || !wechat.IsRetryable(err) || api == "v3" && status(err) != http.StatusTooManyRequests {
				t.Fatalf("a second refund at once: %v, want FREQUENCY_LIMITED, retryable", err)
			}
			if err := refund("RR-1", 10); err != nil {
				t.Fatalf("the first refund again: %v", err)
			}
			clk.Add(59 * time.Millisecond)
			if err := refund("RR-2", 10); wechat.CodeOf(err) != "FREQUENCY_LIMITED" {
				t.Fatalf("59 scaled seconds later: %v", err)
			}
			clk.Add(time.Millisecond)
			if err := refund("RR-2", 10); err != nil {
				t.Fatalf("a scaled minute later: %v", err)
			}

			w.sim.RefuseRefund("RR-X", "USER_ACCOUNT_ABNORMAL", "退款请求失败")
			clk.Add(time.Second)
			err = refund("RR-X", 10)
			if wechat.CodeOf(err) != "USER_ACCOUNT_ABNORMAL" || wechat.IsRetryable(err) || api == "v3" && status(err) != http.StatusForbidden {
				t.Fatalf("a refund WeChat refuses: %v", err)
			}
			if e, _ := errors.AsType[*wechat.Error](err); e == nil || e.Message != "退款请求失败" {
				t.Fatalf("its message: %v", err)
			}

			for i := 3; i <= 50; i++ {
				clk.Add(time.Second)
				if err := refund(fmt.Sprintf("RR-%d", i), 1); err != nil {
					t.Fatalf("refund %d: %v", i, err)
				}
			}
			clk.Add(time.Second)
			err = refund("RR-51", 1)
			want := map[string]string{"v2": "ERROR", "v3": "INVALID_REQUEST"}[api]
			if wechat.CodeOf(err) != want || wechat.IsRetryable(err) {
				t.Fatalf("the 51st refund: %v, want %s, final", err, want)
			}
		})
	}
}
