package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/client"
)

// fakeWxflow answers a few requests as wxflow's API does (docs/API.md), for
// the examples to run without a deployment.
func fakeWxflow() *httptest.Server {
	m := http.NewServeMux()
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer wxs_example_key" {
				status, body = 401, `{"error":{"code":"unauthenticated","reason":"the shop API key is not valid"}}`
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintln(w, body)
		}
	}
	created := answer(201, `{"order":{"id":"o_9e1daebbd4101c4c612cd96be6","merchant":"default","shop":"demo","out_trade_no":"wxf9e1daebbd4101c4c612cd96be6","description":"tea","amount_fen":1990,"pay_api":"v3","client":"jsapi","openid":"oUser123","state":"authorized","paid_fen":0,"refunded_fen":0,"expires_at":"2026-11-30T04:13:22Z","created_at":"2026-11-30T02:13:22Z","updated_at":"2026-11-30T02:13:22Z","version":2}}`)
	subOrder := answer(201, `{"order":{"id":"o_2b7c5e0d1f3a4e6b8c9d0a1b2c","merchant":"provider-sub1","shop":"demo","out_trade_no":"wxf2b7c5e0d1f3a4e6b8c9d0a1b2c","description":"coffee","amount_fen":1500,"pay_api":"v3","client":"miniprogram","appid":"wx5d3e1b7a9c2f4e60","login_code":"0a3Xk2ll2","state":"created","paid_fen":0,"refunded_fen":0,"expires_at":"2026-11-30T04:13:22Z","created_at":"2026-11-30T02:13:22Z","updated_at":"2026-11-30T02:13:22Z","version":1}}`)
	m.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Merchant string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Merchant == "provider-sub1" {
			subOrder(w, r)
			return
		}
		created(w, r)
	})
	m.HandleFunc("GET /v1/orders/o_9e1daebbd4101c4c612cd96be6/pay-params", answer(200, `{"bridge":{"appId":"wx73edaab01cb154bd","nonceStr":"B8698A0B023EAA85A668650B4957509C","package":"prepay_id=wx202611300213220000000001","paySign":"UAodShVu","signType":"RSA","timeStamp":"1796004802"},"choose_wx_pay":{"nonceStr":"B8698A0B023EAA85A668650B4957509C","package":"prepay_id=wx202611300213220000000001","paySign":"UAodShVu","signType":"RSA","timestamp":"1796004802"},"request_payment":{"nonceStr":"B8698A0B023EAA85A668650B4957509C","package":"prepay_id=wx202611300213220000000001","paySign":"UAodShVu","signType":"RSA","timeStamp":"1796004802"}}`))
	m.HandleFunc("GET /v1/orders/o_9e1daebbd4101c4c612cd96be6", answer(200, `{"order":{"id":"o_9e1daebbd4101c4c612cd96be6","merchant":"default","shop":"demo","amount_fen":1990,"pay_api":"v3","client":"jsapi","state":"notified","paid_fen":1990,"refunded_fen":0,"transaction_id":"4200202611300000000002","version":6},"history":[],"refunds":null}`))
	m.HandleFunc("POST /v1/orders/o_9e1daebbd4101c4c612cd96be6/refunds", answer(422, `{"error":{"code":"over_refund","reason":"refund of 2000 fen exceeds the 1990 fen that remain"}}`))
	return httptest.NewServer(m)
}

func ExampleClient_CreateOrder() {
	api := fakeWxflow() // wxflow's internal listener, e.g. https://wxflow.internal.example
	defer api.Close()
	c, err := client.New(api.URL, "wxs_example_key")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.CreateOrder(context.Background(), client.CreateOrderRequest{
		AmountFen:      1990, // 19.90 CNY
		Description:    "tea",
		PayAPI:         client.PayV3,
		Payer:          client.PayerOpenID("oUser123"),
		IdempotencyKey: "cart-1001", // sent again, the same order
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Order.ID, res.Order.State, res.Order.AmountFen)
	// Output: o_9e1daebbd4101c4c612cd96be6 authorized 1990
}

// A deployment serves several merchants: an order names its merchant and,
// when the merchant has several apps, the one its payer is in. Here a
// sub-merchant of a service provider, paid in its own mini-program.
func ExampleClient_CreateOrder_merchantAndApp() {
	api := fakeWxflow()
	defer api.Close()
	c, err := client.New(api.URL, "wxs_example_key")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.CreateOrder(context.Background(), client.CreateOrderRequest{
		Merchant:       "provider-sub1",
		AppID:          "wx5d3e1b7a9c2f4e60", // its mini-program: wx.login's code is this app's
		AmountFen:      1500,
		Description:    "coffee",
		PayAPI:         client.PayV3,
		Payer:          client.PayerLoginCode("0a3Xk2ll2"),
		IdempotencyKey: "cart-2002",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Order.Merchant, res.Order.AppID, res.Order.Frontend, res.Order.State)
	// Output: provider-sub1 wx5d3e1b7a9c2f4e60 miniprogram created
}

func ExampleClient_PayParams() {
	api := fakeWxflow()
	defer api.Close()
	c, _ := client.New(api.URL, "wxs_example_key")
	p, err := c.PayParams(context.Background(), "o_9e1daebbd4101c4c612cd96be6")
	if errors.Is(err, client.ErrNotSigned) {
		return // not signed yet (poll the order), or paid already
	}
	if err != nil {
		log.Fatal(err)
	}
	// Hand the page the shape it calls WeChat with, unchanged: here a
	// mini-program's wx.requestPayment.
	fmt.Println(string(p.RequestPayment))
	s, _ := p.Signed()
	fmt.Println(s.Package, s.SignType)
	// Output:
	// {"nonceStr":"B8698A0B023EAA85A668650B4957509C","package":"prepay_id=wx202611300213220000000001","paySign":"UAodShVu","signType":"RSA","timeStamp":"1796004802"}
	// prepay_id=wx202611300213220000000001 RSA
}

func ExampleClient_GetOrder() {
	api := fakeWxflow()
	defer api.Close()
	c, _ := client.New(api.URL, "wxs_example_key")
	v, err := c.GetOrder(context.Background(), "o_9e1daebbd4101c4c612cd96be6")
	if err != nil {
		log.Fatal(err)
	}
	// Only wxflow decides that an order is paid, never the page's callback.
	fmt.Println(v.Order.State, v.Order.Paid())
	// Output: notified true
}

func ExampleError() {
	api := fakeWxflow()
	defer api.Close()
	c, _ := client.New(api.URL, "wxs_example_key")
	_, err := c.Refund(context.Background(), "o_9e1daebbd4101c4c612cd96be6", client.RefundRequest{AmountFen: 2000, OutRefundNo: "rf-1001-1"})
	var e *client.Error
	switch {
	case errors.Is(err, client.ErrOverRefund) && errors.As(err, &e):
		fmt.Println(e.StatusCode, e.Code+":", e.Reason)
	case err != nil:
		log.Fatal(err)
	}
	// Output: 422 over_refund: refund of 2000 fen exceeds the 1990 fen that remain
}

func ExampleVerifyWebhook() {
	secret := "whsec_0123456789abcdefghijklmnopqrstuv0123456789abcdefghij"
	body := []byte(`{"id":"evt_1","type":"notified","order_id":"o_1","seq":6}`)
	sentAt := time.Unix(1796004802, 0)
	header := client.SignWebhook(secret, sentAt, body) // what wxflow sends as Wxflow-Signature
	fmt.Println(header)

	fmt.Println(client.VerifyWebhook(secret, header, body, sentAt.Add(time.Minute), 0))
	fmt.Println(client.VerifyWebhook(secret, header, []byte(`{"id":"evt_1","type":"notified","order_id":"o_2","seq":6}`), sentAt, 0))
	fmt.Println(errors.Is(client.VerifyWebhook(secret, header, body, sentAt.Add(time.Hour), 0), client.ErrWebhookStale))
	// Output:
	// t=1796004802,v1=ebdaebe86e1a7092c0921e86db771619e8b4421b3701c9273c6961cfa3720027
	// <nil>
	// wxflow webhook: signature does not match
	// true
}

func ExampleWebhookHandler() {
	http.Handle("/hooks/wxflow", &client.WebhookHandler{
		// During a rotation, the new secret and the old.
		Secrets: []string{os.Getenv("WXFLOW_WEBHOOK_SECRET"), os.Getenv("WXFLOW_WEBHOOK_SECRET_OLD")},
		Handle: func(ctx context.Context, e client.Event) error {
			if e.Type == client.EventNotified && e.Order.Paid() {
				// Mark the shop's cart paid, once: deliveries may repeat (by e.ID).
				log.Printf("order %s paid (%d fen)", e.OrderID, e.Order.PaidFen)
			}
			return nil // 204; an error is answered 500 and delivered again
		},
	})
}

func ExampleNATS_Feed() {
	opts, err := client.ShopNATSOptions("acme", "/etc/acme/shop-acme.nk")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect("tls://nats.internal.example:4222", opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	n, err := client.NewNATS(nc, client.NATSConfig{Shop: "acme", Merchants: []string{"default"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	// Every event of the shop's merchants, at least once, from where the
	// shop left off: run it in each of the shop's processes.
	err = n.Feed(ctx, client.FeedOptions{Types: []client.EventType{client.EventNotified, client.EventRefunded}},
		func(ctx context.Context, d client.Delivery) error {
			log.Printf("%s: order %s (seq %d), attempt %d", d.Type, d.OrderID, d.Seq, d.Attempt)
			return nil // acked; an error delivers it again after a backoff
		})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleNATS_Watch() {
	var n *client.NATS // from client.NewNATS
	var c *client.Client
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	id := "o_9e1daebbd4101c4c612cd96be6"
	// Watch first, then read: nothing between is missed.
	w, err := n.Watch(ctx, client.WatchFilter{OrderID: id})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	if v, err := c.GetOrder(ctx, id); err == nil && v.Order.Paid() {
		return
	}
	for {
		e, err := w.Next(ctx)
		if err != nil {
			log.Fatal(err) // the context ended: read the order again
		}
		if e.Type == client.EventNotified {
			log.Printf("paid: %s", e.Order.TransactionID)
			return
		}
	}
}

func ExampleNATS_CreateOrder() {
	var n *client.NATS // from client.NewNATS
	res, err := n.CreateOrder(context.Background(), "default", client.CreateOrderRequest{
		AmountFen: 880, Description: "milk tea", PayAPI: client.PayV3,
		Payer:          client.PayerLoginCode("code-of-wx.login"),
		IdempotencyKey: "cart-1003", // names the order: sending again is safe
	})
	if err != nil {
		log.Fatal(err)
	}
	if res.Pending {
		log.Printf("order %s is queued; its events will tell", res.Order.ID)
	}
}
