package verify

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/sim/simtest"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestVerifyMerchants pays real orders at the simulator for a direct
// merchant, a sub-merchant in its own mini-program (sub_openid) and one in
// its provider's Official Account (sp_openid), refunds one, records them in
// a real store, and checks that verify finds no breach; then each tampered
// row (another merchant, another app, a refund moved to another merchant's
// order, a payment WeChat never had) is a breach of its rule.
func TestVerifyMerchants(t *testing.T) {
	s, simURL, client := simtest.Start(t, sim.Config{Merchants: sim.DevMerchants()})
	reg := s.Keys().Registry
	store, db := enginetest.OpenSQLiteWithDB(t)
	_, nc, js := enginetest.StartNATS(t)
	ctx := t.Context()
	e, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, in, out any) {
		t.Helper()
		body, _ := json.Marshal(in)
		resp, err := client.Post(simURL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply := func(c engine.Command) {
		t.Helper()
		c.Actor = "test"
		if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("%s %s: %+v %v", c.Verb, c.OrderID, res, err)
		}
	}
	// pay makes an order of merchant name in app appid at WeChat, pays it,
	// and records it paid in wxflow.
	pay := func(id, name, appid string, kind wechat.AppKind) *v3.Client {
		t.Helper()
		m, err := reg.Merchant(name)
		if err != nil {
			t.Fatal(err)
		}
		path := "/sim/oauth/code"
		if kind == wechat.AppMiniProgram {
			path = "/sim/login"
		}
		var code struct{ OpenID string }
		post(path, map[string]string{"appid": appid, "user": "payer-" + id}, &code)
		c, err := v3.NewClient(v3.Config{BaseURL: simURL, Merchant: m, HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		prepay, err := c.PrepayJSAPI(ctx, v3.PrepayRequest{AppID: appid, Description: "d", OutTradeNo: id, TotalFen: 100, OpenID: code.OpenID,
			NotifyURL: "https://127.0.0.1:9/wechat/notify/" + name + "/v3/pay", ClientIP: "127.0.0.1", TimeExpire: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatalf("prepay %s: %v", id, err)
		}
		var paid struct {
			TransactionID string `json:"transaction_id"`
		}
		post("/sim/pay", map[string]string{"prepay_id": prepay}, &paid)
		client := engine.ClientJSAPI
		if kind == wechat.AppMiniProgram {
			client = engine.ClientMiniProgram
		}
		apply(engine.Command{ID: "create:" + id, Verb: engine.VerbCreate, OrderID: engine.OrderID(id), Create: &engine.CreateOrder{
			Merchant: name, OutTradeNo: id, Description: "d", AmountFen: 100, PayAPI: engine.PayV3, Client: client, AppID: appid,
			OpenID: code.OpenID, ExpiresAt: time.Now().Add(time.Hour), RequestHash: id}})
		apply(engine.Command{ID: "notify:" + id, Verb: engine.VerbNotify, OrderID: engine.OrderID(id), Notify: &engine.Payment{
			TransactionID: paid.TransactionID, AmountFen: 100, PaidAt: time.Now(), Source: engine.SourceQuery}})
		return c
	}
	second, _ := reg.Merchant("second")
	sub1, _ := reg.Merchant("provider-sub1")
	sub2, _ := reg.Merchant("provider-sub2")
	pay("vmDirect0001", "second", second.Apps[0].AppID, wechat.AppOfficialAccount)
	c := pay("vmSubOwn0001", "provider-sub1", sub1.Apps[0].AppID, wechat.AppMiniProgram)
	pay("vmSubSp00001", "provider-sub2", sub2.SpAppID(), wechat.AppOfficialAccount)
	if _, err := c.Refund(ctx, v3.RefundRequest{OutTradeNo: "vmSubOwn0001", OutRefundNo: "vmRefund0001", TotalFen: 100, RefundFen: 30,
		NotifyURL: "https://127.0.0.1:9/wechat/notify/provider-sub1/v3/refund"}); err != nil {
		t.Fatal(err)
	}
	apply(engine.Command{ID: "refund:vmRefund0001", Verb: engine.VerbRefund, OrderID: "vmSubOwn0001",
		Refund: &engine.RefundAsk{OutRefundNo: "vmRefund0001", AmountFen: 30}})

	check := func() map[string]engine.OrderID {
		t.Helper()
		recs, err := SimRecords(ctx, client, simURL)
		if err != nil {
			t.Fatal(err)
		}
		breaches, err := Merchants(ctx, store, reg, recs)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]engine.OrderID{}
		for _, b := range breaches {
			got[b.Rule] = b.OrderID
			t.Logf("breach %s %s: %s", b.Rule, b.OrderID, b.Detail)
		}
		if len(got) != len(breaches) {
			t.Fatalf("one rule broken twice: %+v", breaches)
		}
		return got
	}
	if got := check(); len(got) != 0 {
		t.Fatalf("untampered: breaches %v", got)
	}
	exec := func(q string, args ...any) { t.Helper(); db.MustExecContext(ctx, db.Rebind(q), args...) }
	for _, tc := range []struct {
		name, do, undo string
		args           []any
		rule           string
		order          engine.OrderID
	}{
		{"a sub-merchant's payment recorded under a direct merchant", "UPDATE orders SET merchant = ? WHERE id = ?",
			"UPDATE orders SET merchant = 'provider-sub1' WHERE id = 'vmSubOwn0001'", []any{"second", "vmSubOwn0001"}, RuleOrderMerchantUnknown, "vmSubOwn0001"},
		{"a sub-merchant's payment recorded under its sibling, app and all", "UPDATE orders SET merchant = ?, appid = ? WHERE id = ?",
			"UPDATE orders SET merchant = 'provider-sub2', appid = '" + sub2.SpAppID() + "' WHERE id = 'vmSubSp00001'",
			[]any{"provider-sub1", sub2.SpAppID(), "vmSubSp00001"}, RulePaymentOtherMerchant, "vmSubSp00001"},
		{"a direct payment recorded under the sibling's app", "UPDATE orders SET merchant = ?, appid = ? WHERE id = ?",
			"UPDATE orders SET merchant = 'second', appid = '" + second.Apps[0].AppID + "' WHERE id = 'vmDirect0001'",
			[]any{"provider-sub2", sub2.SpAppID(), "vmDirect0001"}, RulePaymentOtherMerchant, "vmDirect0001"},
		{"a refund moved to another merchant's order", "UPDATE refunds SET order_id = ? WHERE out_refund_no = ?",
			"UPDATE refunds SET order_id = 'vmSubOwn0001' WHERE out_refund_no = 'vmRefund0001'",
			[]any{"vmDirect0001", "vmRefund0001"}, RuleRefundOtherMerchant, "vmDirect0001"},
		{"a payment WeChat never had", "UPDATE orders SET out_trade_no = ? WHERE id = ?",
			"UPDATE orders SET out_trade_no = 'vmDirect0001' WHERE id = 'vmDirect0001'",
			[]any{"vmNeverPaid01", "vmDirect0001"}, RulePaymentNotAtWechat, "vmDirect0001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(tc.do, tc.args...)
			got := check()
			exec(tc.undo)
			if got[tc.rule] != tc.order || len(got) != 1 {
				t.Fatalf("breaches %v, want only %s of %s", got, tc.rule, tc.order)
			}
		})
	}
	if got := check(); len(got) != 0 {
		t.Fatalf("undone: breaches %v", got)
	}
}
