package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
)

// TestV2RefundNotificationIsConfirmedByAQuery: a v2 refund notification's
// req_info (AES-256-ECB, no MAC) is not proof. One saying SUCCESS while
// WeChat's refund is still PROCESSING leaves the refund pending, though it
// decrypts with the merchant's key; once WeChat settles, the refund worker's
// query settles it.
func TestV2RefundNotificationIsConfirmedByAQuery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = time.Hour, time.Hour // the reconciler stays out of it
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// WeChat keeps the refund PROCESSING until the test settles it.
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.01, RefundDelay: 100_000 * time.Hour}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	nc, js := connectAs(t, &s, natsauth.API)
	defer nc.Close()
	send := func(c engine.Command) {
		t.Helper()
		if _, err := engine.Publish(ctx, js, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(id engine.OrderID, want engine.State) engine.Order {
		t.Helper()
		var o engine.Order
		enginetest.WaitFor(t, 30*time.Second, func() error {
			o, err = st.Store.Order(ctx, id)
			if err != nil || o.State != want {
				return fmt.Errorf("order %s is %s (%v), want %s", id, o.State, err, want)
			}
			return nil
		})
		return o
	}

	const id = engine.OrderID("v2refund1")
	send(engine.Command{ID: "create:" + string(id), Verb: engine.VerbCreate, Origin: engine.OriginAPI, OrderID: id, Actor: "shop", Create: &engine.CreateOrder{
		Merchant: "default", OutTradeNo: "V2R-0001", Description: "v2 refund notification", AmountFen: 500, PayAPI: engine.PayV2,
		Client: engine.ClientJSAPI, OpenID: "oV2REFUND", ClientIP: "127.0.0.1", ExpiresAt: time.Now().Add(time.Hour), RequestHash: "h"}})
	o := waitState(id, engine.Signed)
	simAPI := &demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}
	if err := simAPI.Do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": o.PrepayID}, nil); err != nil {
		t.Fatal(err)
	}
	o = waitState(id, engine.Notified)
	send(engine.Command{ID: engine.RefundCommandID(id, "V2R-R-0001", 500), Verb: engine.VerbRefund, Origin: engine.OriginAPI, OrderID: id, Actor: "shop",
		Refund: &engine.RefundAsk{OutRefundNo: "V2R-R-0001", AmountFen: 500}})
	waitState(id, engine.Refunding)
	enginetest.WaitFor(t, 30*time.Second, func() error {
		for _, r := range st.Sim.Snapshot().Refunds {
			if r.OutRefundNo == "V2R-R-0001" && r.Status == "PROCESSING" {
				return nil
			}
		}
		return fmt.Errorf("WeChat has no refund V2R-R-0001 processing")
	})

	// A notification says SUCCESS: req_info decrypts with the merchant's key
	// (as one cut from another genuine notification would), WeChat disagrees.
	m := st.Sim.Keys().Merchant
	plain := v2.EncodeXMLRoot("root", map[string]string{"out_refund_no": "V2R-R-0001", "out_trade_no": o.OutTradeNo,
		"transaction_id": o.TransactionID, "refund_id": "50000000000000000000000000001", "refund_fee": "500",
		"settlement_refund_fee": "500", "total_fee": "500", "settlement_total_fee": "500", "refund_status": "SUCCESS",
		"success_time": time.Now().Format("2006-01-02 15:04:05"), "refund_recv_accout": "支付用户零钱",
		"refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API"})
	reqInfo, err := v2.EncryptReqInfo(plain, string(m.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	body := v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID,
		"nonce_str": v2.NonceStr(), "req_info": reqInfo})
	resp, err := http.Post(st.APIURL+"/wechat/notify/default/v2/refund", "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(reply, []byte("<return_code><![CDATA[SUCCESS]]>")) {
		t.Fatalf("the notification was not acknowledged: %s", reply)
	}
	// Wait until the refund worker has handled the replay the notification
	// asked for: the replay is in the history, published, and the worker's
	// consumer has nothing left to deliver or to be acked.
	enginetest.WaitFor(t, 30*time.Second, func() error {
		h, err := st.Store.History(ctx, id)
		if err != nil {
			return err
		}
		replayed := false
		for _, x := range h {
			replayed = replayed || x.Applied && x.Type == string(engine.EventRefunding) && x.Actor == "wechat:notify"
		}
		if !replayed {
			return fmt.Errorf("no replay asked by the notification in the history")
		}
		if n, err := st.Store.OutboxBacklog(ctx); err != nil || n != 0 {
			return fmt.Errorf("outbox backlog %d (%v)", n, err)
		}
		c, err := js.Consumer(ctx, engine.EventStream, "refund")
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending+uint64(info.NumAckPending) != 0 {
			return fmt.Errorf("the refund worker has %d events pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if got, _ := st.Store.Order(ctx, id); got.State != engine.Refunding || got.RefundedFen != 0 {
		t.Fatalf("after the notification alone: order %s, %d fen refunded; want refunding, 0", got.State, got.RefundedFen)
	}
	if r, _ := st.Store.RefundByOutRefundNo(ctx, "V2R-R-0001"); r.State != engine.RefundPending {
		t.Fatalf("refund %s, want pending", r.State)
	}

	// WeChat settles: its own notification comes, and the query it asks for settles the refund.
	if !st.Sim.SettleRefund("V2R-R-0001") {
		t.Fatal("the simulator had no refund to settle")
	}
	o = waitState(id, engine.Refunded)
	if o.RefundedFen != 500 {
		t.Fatalf("refunded %d fen, want 500", o.RefundedFen)
	}
	h, _ := st.Store.History(ctx, id)
	last := h[len(h)-1]
	if last.Type != string(engine.EventRefunded) || last.Actor != "worker:refund" {
		t.Fatalf("the refund was settled by %s (%s), want the refund worker's query: %+v", last.Actor, last.Type, h)
	}
}
