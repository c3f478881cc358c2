package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/openapitest"
	"github.com/wxflow/wxflow/workers/wechat"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
	"golang.org/x/time/rate"
)

// refundTarget is the shop API over a real engine, NATS and SQLite, with one
// paid order to refund. No worker runs, so a refund the engine accepts stays
// pending until settle marks it done, as WeChat's refund notification would.
type refundTarget struct {
	url    string
	key    string // the shop's API key
	client *http.Client
	eng    *engine.Engine
	store  *engine.Store
	order  engine.OrderID
	paid   int64
}

// newRefundTarget starts the stack and drives one order of paidFen to
// notified. It takes a testing.TB, unlike the other tests' harness, so that a
// fuzz target starts it once per process instead of once per input; and it
// uses the vectors' merchant, which needs no key generation.
func newRefundTarget(tb testing.TB, paidFen int64) *refundTarget {
	tb.Helper()
	eng, store, nc, js := enginetest.StartEngine(tb)

	vs := wechattest.Load(tb)
	key, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.MerchantPrivateKeyPEM))
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := wechat.ParseRSAPublicKey([]byte(vs.Keys.V3.WechatpayPublicKeyPEM))
	if err != nil {
		tb.Fatal(err)
	}
	m := &wechat.Merchant{Name: "default", AppID: "wxd678efh567hg6787", MchID: vs.Keys.V3.MchID,
		APIKey: wechat.Secret(vs.Keys.V2APIKey), APIv3Key: wechat.Secret(vs.Keys.V3.APIv3Key),
		SerialNo: vs.Keys.V3.MerchantSerialNo, PrivateKey: key,
		WechatPayPublicKeyID: vs.Keys.V3.WechatpayPublicKeyID, WechatPayPublicKey: pub}
	c2, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		tb.Fatal(err)
	}
	c3, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := api.New(api.Config{Merchants: []api.Merchant{{Merchant: m, V2: c2, V3: c3}}, Store: store, NC: nc, JS: js, Secret: testSecret,
		InternalRate: rate.Inf}) // the fuzzer asks thousands of times a second, as no shop may
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := store.AddShop(ctx, engine.Shop{Name: "fuzz", Merchants: []string{m.Name}, CreatedAt: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	shopKey, rec := engine.NewShopKey(testSecret, "fuzz", time.Now())
	if err := store.AddShopKey(ctx, rec); err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)

	id := engine.OrderID("o_fuzzrefund")
	steps := []engine.Command{
		{ID: "create:" + string(id), Verb: engine.VerbCreate, OrderID: id, Actor: "shop",
			Create: &engine.CreateOrder{Merchant: m.Name, Shop: "fuzz", OutTradeNo: "FUZZ-REFUND-0001", Description: "d", AmountFen: paidFen,
				PayAPI: engine.PayV3, Client: engine.ClientJSAPI, OpenID: "o1", RequestHash: "h"}},
		{ID: "p:" + string(id), Verb: engine.VerbPrepaid, OrderID: id, Prepaid: &engine.PrepaidInfo{PrepayID: "wx1"}},
		{ID: "s:" + string(id), Verb: engine.VerbSigned, OrderID: id, Signed: &engine.SignedInfo{PayParams: engine.RawJSON(testPayParams)}},
		{ID: "n:" + string(id), Verb: engine.VerbNotify, OrderID: id,
			Notify: &engine.Payment{TransactionID: "4200000001", AmountFen: paidFen, Source: engine.SourceNotification}},
	}
	for _, c := range steps {
		if res, err := eng.Apply(context.Background(), c); err != nil || !res.Applied {
			tb.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
	return &refundTarget{url: hs.URL, key: shopKey, client: openapitest.New(tb, openapitest.Internal).Client(hs.Client()),
		eng: eng, store: store, order: id, paid: paidFen}
}

// testPayParams are pay parameters of the shape the sign worker stores (the
// signature is not checked here).
const testPayParams = `{"bridge":{"appId":"wxd678efh567hg6787","timeStamp":"1700000000","nonceStr":"n","package":"prepay_id=wx1","signType":"RSA","paySign":"x"},` +
	`"choose_wx_pay":{"timestamp":"1700000000","nonceStr":"n","package":"prepay_id=wx1","signType":"RSA","paySign":"x"},` +
	`"request_payment":{"timeStamp":"1700000000","nonceStr":"n","package":"prepay_id=wx1","signType":"RSA","paySign":"x"}}`

// post sends body as a refund request of the paid order.
func (rt *refundTarget) post(t *testing.T, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rt.url+"/v1/orders/"+string(rt.order)+"/refunds", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rt.key)
	resp, err := rt.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// settle marks every pending refund succeeded, as WeChat would (the refunds
// queued behind it are sent a minute later, past the test's end).
func (rt *refundTarget) settle(t *testing.T, refunds []engine.Refund) {
	t.Helper()
	for _, r := range refunds {
		if r.State != engine.RefundPending {
			continue
		}
		c := engine.Command{ID: "refunded:" + r.OutRefundNo, Verb: engine.VerbRefunded, OrderID: rt.order, Actor: "wechat:notify",
			Refunded: &engine.RefundDone{OutRefundNo: r.OutRefundNo, RefundID: "5030" + r.OutRefundNo, Succeeded: true,
				Source: engine.SourceNotification}}
		if res, err := rt.eng.Apply(context.Background(), c); err != nil || !res.Applied {
			t.Fatalf("settle %s: %+v %v", r.OutRefundNo, res, err)
		}
	}
}

// refundFields are the JSON names of api.RefundRequest, matched exactly
// (encoding/json alone would match them without regard to case).
var refundFields = []string{"amount_fen", "reason", "out_refund_no"}

// FuzzRefundRequest posts arbitrary bodies to POST /v1/orders/{id}/refunds
// of a paid order: the shop's refund request, the one request that moves
// money back out.
//
// It asserts that no body makes the server fail (5xx); that whatever is not
// refused as input (400, 413, 422) is JSON that decodes into
// api.RefundRequest and names no field but the request's, exactly as
// spelled, each once; and that a refund the engine
// accepts (202) is for 1 fen to 10 million CNY, is answered as the refund
// asked (the out_refund_no the shop gave, or a new one), is held under that
// number, and leaves the order's refunds within what was paid.
//
// The refund held under a given out_refund_no is of the amount asked: the
// same out_refund_no asked again with another amount is a conflict (409),
// never an accepted repeat of the first request.
func FuzzRefundRequest(f *testing.F) {
	f.Add([]byte(`{"amount_fen":100,"reason":"damaged","out_refund_no":"SHOP-R-000001"}`))
	f.Add([]byte(`{"amount_fen":-1}`))
	rt := newRefundTarget(f, 1_000_000_000)
	f.Fuzz(func(t *testing.T, body []byte) {
		status, answer := rt.post(t, body)
		t.Logf("%d %s", status, answer)
		if status >= 500 {
			t.Fatalf("answered %d %s", status, answer)
		}
		switch status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return
		}
		if !json.Valid(body) {
			t.Fatalf("answered %d %s to a body that is not JSON", status, answer)
		}
		var q api.RefundRequest
		if err := json.Unmarshal(body, &q); err != nil {
			t.Fatalf("answered %d %s to a body that does not decode: %v", status, answer, err)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		_, _ = dec.Token()
		seen := map[string]bool{}
		for dec.More() {
			tok, _ := dec.Token()
			k, _ := tok.(string)
			var v json.RawMessage
			_ = dec.Decode(&v)
			if !slices.Contains(refundFields, k) || seen[k] {
				t.Fatalf("answered %d %s to a body with the unknown or repeated field %q", status, answer, k)
			}
			seen[k] = true
		}
		if status != http.StatusAccepted {
			return
		}
		if q.AmountFen <= 0 || q.AmountFen > 1_000_000_000 {
			t.Fatalf("accepted a refund of %d fen", q.AmountFen)
		}
		// The answer is the refund (or, not decided within the reply
		// timeout, its number and "pending"): the one asked.
		var a struct {
			api.RefundView
			Pending bool `json:"pending"`
		}
		if err := json.Unmarshal(answer, &a); err != nil || a.OrderID != rt.order || a.AmountFen != q.AmountFen || a.OutRefundNo == "" ||
			q.OutRefundNo != "" && a.OutRefundNo != q.OutRefundNo || !a.Pending && !slices.Contains([]string{"queued", "pending", "succeeded", "failed"}, a.Status) {
			t.Fatalf("asked %+v, answered %s (%v)", q, answer, err)
		}
		var refunds []engine.Refund
		enginetest.WaitFor(t, 5*time.Second, func() error {
			var err error
			if refunds, err = rt.store.Refunds(context.Background(), rt.order); err != nil {
				return err
			}
			for _, r := range refunds {
				if r.OutRefundNo == a.OutRefundNo {
					if r.AmountFen != q.AmountFen {
						t.Fatalf("accepted %d fen under %s, which holds a refund of %d fen", q.AmountFen, a.OutRefundNo, r.AmountFen)
					}
					return nil
				}
			}
			return fmt.Errorf("asked %+v, answered %s, the engine holds %+v", q, answer, refunds)
		})
		var total int64
		for _, r := range refunds {
			if r.State != engine.RefundFailed {
				total += r.AmountFen
			}
		}
		if total > rt.paid {
			t.Fatalf("refunds total %d fen of %d paid", total, rt.paid)
		}
		rt.settle(t, refunds)
	})
}
