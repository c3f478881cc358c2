package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/sim/simtest"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestCallRecords: every attempt that asks WeChat something is recorded
// with what it asked and the answer, including those that change nothing:
// a query answering "not paid yet" (NOTPAY), a query of an order WeChat
// does not know, a refund still processing. A step that asks nothing and
// does nothing (authorize of an order created with its openid) leaves no
// record.
func TestCallRecords(t *testing.T) {
	s, url, hc := simtest.Start(t, sim.Config{TimeScale: 0.001, RefundDelay: 100_000 * time.Hour})
	ctx := context.Background()
	m := s.Keys().Merchant
	c2, _ := v2.NewClient(v2.Config{BaseURL: url, Merchant: m, HTTPClient: hc, RootCAs: s.RootCAs()})
	c3, _ := v3.NewClient(v3.Config{BaseURL: url, Merchant: m, HTTPClient: hc})
	payments, _ := pay.New(pay.Config{Merchant: m, V2: c2, V3: c3, NotifyBaseURL: "http://127.0.0.1:1"})
	_, _, js := enginetest.StartNATS(t)
	deps := workers.Deps{Merchants: workers.OneMerchant(m, payments, nil)}
	for _, h := range []workers.Handler{workers.Authorize{Deps: deps}, workers.Query{Deps: deps}, workers.Refund{Deps: deps}} {
		run(t, js, h, workers.LoopConfig{})
	}

	// An order WeChat knows (prepaid), and one paid.
	order := func(n int, api engine.PayAPI) engine.Order {
		return engine.Order{ID: engine.OrderID(fmt.Sprintf("o_calls%d", n)), Merchant: "default", OutTradeNo: fmt.Sprintf("CALLS-%06d", n),
			Description: "d", AmountFen: 500, PayAPI: api, OpenID: "oCALLS", ClientIP: "127.0.0.1", ExpiresAt: time.Now().Add(time.Hour)}
	}
	prepay := func(o engine.Order) string {
		t.Helper()
		id, err := payments.Prepay(ctx, pay.PrepayRequest{API: string(o.PayAPI), OutTradeNo: o.OutTradeNo, Description: o.Description,
			AmountFen: o.AmountFen, OpenID: o.OpenID, ClientIP: o.ClientIP, ExpiresAt: o.ExpiresAt})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	unpaid, unknown, paid := order(1, engine.PayV2), order(2, engine.PayV3), order(3, engine.PayV3)
	prepay(unpaid)
	resp, err := hc.Post(url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+prepay(paid)+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pay: %v", err)
	}
	resp.Body.Close()
	withOpenID := order(4, engine.PayV2)

	unpaid.State, unknown.State, withOpenID.State = engine.Signed, engine.Signed, engine.Authorized
	paid.State, paid.PaidFen = engine.Refunding, 500
	rf := &engine.Refund{OutRefundNo: "CALLS-R-0003", OrderID: paid.ID, AmountFen: 200, State: engine.RefundPending}
	for i, ev := range []engine.Event{
		{Type: engine.EventQueryRequested, Order: unpaid},
		{Type: engine.EventQueryRequested, Order: unknown},
		{Type: engine.EventRefunding, Order: paid, Refund: rf},
		{Type: engine.EventCreated, Order: withOpenID},
	} {
		ev.ID, ev.OrderID = fmt.Sprintf("evt_calls_%d", i), ev.Order.ID
		b, _ := json.Marshal(ev)
		if _, err := js.Publish(ctx, ev.Subject(), b, jetstream.WithMsgID(ev.ID)); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		id      engine.OrderID
		worker  string
		outcome string
		asked   string
	}{
		{"query, not paid yet", unpaid.ID, "query", "unchanged", "query NOTPAY"},
		{"query, unknown at WeChat", unknown.ID, "query", "unchanged", "query ORDER_NOT_EXIST"},
		{"refund, processing", paid.ID, "refund", "unchanged", "refund PROCESSING, refund query PROCESSING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []workers.CallRecord
			enginetest.WaitFor(t, 20*time.Second, func() error {
				calls, err = workers.ReadCalls(ctx, js, tc.id)
				if err != nil || len(calls) == 0 {
					return fmt.Errorf("no call record of %s yet (%v)", tc.id, err)
				}
				return nil
			})
			c := calls[0]
			var asked []string
			for _, a := range c.Asked {
				asked = append(asked, a.API+" "+a.Answer)
			}
			if len(calls) != 1 || c.Worker != tc.worker || c.Outcome != tc.outcome || strings.Join(asked, ", ") != tc.asked || c.Took <= 0 || c.At.IsZero() {
				t.Fatalf("records %+v; want one by %s, %s, asked %q", calls, tc.worker, tc.outcome, tc.asked)
			}
		})
	}
	// The authorize of an order with its openid asked nothing: no record,
	// once its worker has nothing left in hand.
	settled(t, js, "authorize")
	if calls, err := workers.ReadCalls(ctx, js, withOpenID.ID); err != nil || len(calls) != 0 {
		t.Fatalf("authorize with an openid: records %+v (%v), want none", calls, err)
	}
}
