package workers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/sim/simtest"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestCrashAfterWeChatSucceeded runs each WeChat-facing worker twice on the
// same event, as a redelivery does when the process died after WeChat
// answered and before the result was published: the second run must not
// cause a second effect at WeChat, and must give the same result.
func TestCrashAfterWeChatSucceeded(t *testing.T) {
	s, url, hc := simtest.Start(t, sim.Config{TimeScale: 0.001})
	ctx := context.Background()
	m := s.Keys().Merchant
	c2, _ := v2.NewClient(v2.Config{BaseURL: url, Merchant: m, HTTPClient: hc, RootCAs: s.RootCAs()})
	c3, _ := v3.NewClient(v3.Config{BaseURL: url, Merchant: m, HTTPClient: hc})
	cmp, _ := mp.NewClient(mp.Config{BaseURL: url, AppID: m.AppID, AppSecret: m.AppSecret, HTTPClient: hc})
	payments, _ := pay.New(pay.Config{Merchant: m, V2: c2, V3: c3, NotifyBaseURL: "http://127.0.0.1:1"})
	_, _, js := enginetest.StartNATS(t)
	codes, err := js.KeyValue(ctx, engine.CodeBucket)
	if err != nil {
		t.Fatal(err)
	}
	deps := workers.Deps{Merchants: workers.OneMerchant(m, payments, cmp), Codes: codes}
	twice := func(h workers.Handler, ev engine.Event) (*engine.Command, *engine.Command) {
		t.Helper()
		a, err := h.Handle(ctx, ev)
		if err != nil {
			t.Fatalf("%s, first run: %v", h.Name(), err)
		}
		b, err := h.Handle(ctx, ev)
		if err != nil {
			t.Fatalf("%s, second run (the redelivery): %v", h.Name(), err)
		}
		return a, b
	}

	// authorize with a single-use OAuth code: the redelivery reuses the code's answer.
	resp, err := hc.Post(url+"/sim/oauth/code", "application/json", strings.NewReader(`{"openid":"oCRASH"}`))
	if err != nil {
		t.Fatal(err)
	}
	var code struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&code)
	resp.Body.Close()
	order := engine.Order{ID: "o_crash1", Merchant: m.Name, OutTradeNo: "CRASH-000001", Description: "d", AmountFen: 500, PayAPI: engine.PayV2,
		OAuthCode: code.Code, ClientIP: "127.0.0.1", State: engine.Created}
	a, b := twice(workers.Authorize{Deps: deps}, engine.Event{ID: "evt_1", Type: engine.EventCreated, OrderID: order.ID, Order: order})
	if a.Authorize.OpenID != "oCRASH" || b.Authorize.OpenID != "oCRASH" || a.ID != b.ID {
		t.Fatalf("authorize twice: %+v / %+v", a.Authorize, b.Authorize)
	}

	for _, api := range []engine.PayAPI{engine.PayV2, engine.PayV3} {
		order := engine.Order{ID: engine.OrderID("o_crash_" + string(api)), Merchant: m.Name, OutTradeNo: "CRASH-" + string(api) + "-0001", Description: "d",
			AmountFen: 500, PayAPI: api, OpenID: "oCRASH", ClientIP: "127.0.0.1", State: engine.Authorized}
		// prepay: the same prepay_id, one order at WeChat.
		a, b := twice(workers.Prepay{Deps: deps}, engine.Event{ID: "evt_2" + string(api), Type: engine.EventAuthorized, OrderID: order.ID, Order: order})
		if a.Prepaid.PrepayID == "" || a.Prepaid.PrepayID != b.Prepaid.PrepayID || a.ID != b.ID {
			t.Fatalf("%s prepay twice: %q / %q", api, a.Prepaid.PrepayID, b.Prepaid.PrepayID)
		}
		pr, err := hc.Post(url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+a.Prepaid.PrepayID+`"}`))
		if err != nil || pr.StatusCode != http.StatusOK {
			t.Fatalf("pay: %v", err)
		}
		pr.Body.Close()
		// refund: one refund at WeChat, whatever the number of runs.
		order.State, order.PaidFen = engine.Refunding, 500
		rf := &engine.Refund{OutRefundNo: "CRASH-R-" + string(api), OrderID: order.ID, AmountFen: 500, State: engine.RefundPending}
		ev := engine.Event{ID: "evt_3" + string(api), Type: engine.EventRefunding, OrderID: order.ID, Order: order, Refund: rf}
		h := workers.Refund{Deps: deps}
		for range 3 {
			if _, err := h.Handle(ctx, ev); err != nil {
				t.Fatalf("%s refund: %v", api, err)
			}
		}
	}
	st := s.Snapshot()
	orders, refunds := map[string]int{}, map[string]int64{}
	for _, o := range st.Orders {
		orders[o.OutTradeNo]++
	}
	for _, r := range st.Refunds {
		refunds[r.OutTradeNo] += r.RefundFen
	}
	for _, no := range []string{"CRASH-v2-0001", "CRASH-v3-0001"} {
		if orders[no] != 1 || refunds[no] != 500 {
			t.Errorf("%s at WeChat: %d orders, %d fen refunded; want 1 and 500", no, orders[no], refunds[no])
		}
	}
}
