package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/client"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// TestNATSCommands: a shop creates, closes and is refused over NATS as its
// own NATS user, waiting for the engine's answers in its inbox; what the
// API would refuse is refused before anything is published.
func TestNATSCommands(t *testing.T) {
	d := wxflow(t)
	ctx := context.Background()
	n, err := client.NewNATS(d.natsConn(t, "demo"), client.NATSConfig{Shop: "demo", Merchants: []string{d.merchant}})
	if err != nil {
		t.Fatal(err)
	}
	k := key(t)
	req := client.CreateOrderRequest{AmountFen: 990, Description: "nats tea", PayAPI: client.PayV3,
		Payer: client.PayerOpenID("oNats"), IdempotencyKey: k}
	res, err := n.CreateOrder(ctx, d.merchant, req)
	if err != nil {
		t.Fatal(err)
	}
	o := res.Order
	if res.Pending || o.State != client.StateAuthorized || o.Shop != "demo" || o.Merchant != d.merchant || o.OutTradeNo == "" || o.Frontend != client.FrontendJSAPI {
		t.Fatalf("create over NATS: %+v", res)
	}
	// Within NATS's duplicate window the same request is the same command:
	// durable once, answered to the first send.
	again, err := n.CreateOrder(ctx, d.merchant, req)
	if err != nil || again.Order.ID != o.ID || !again.Replayed {
		t.Fatalf("the same create again: %+v %v", again, err)
	}
	// The same key with another request: another command for the same
	// order id, which the engine refuses.
	other := req
	other.AmountFen = 1990
	if _, err := n.CreateOrder(ctx, d.merchant, other); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("the key with another request: %v, want ErrConflict", err)
	}
	// The order is the shop's on the API too.
	api := d.shop(t)
	signed := waitOrder(t, api, o.ID, "signed", inState(client.StateSigned))
	if signed.Order.AmountFen != 990 {
		t.Fatalf("the order over HTTP: %+v", signed.Order)
	}
	// Another shop's NATS user cannot close it; this one can.
	on, err := client.NewNATS(d.natsConn(t, "other"), client.NATSConfig{Shop: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := on.CloseOrder(ctx, o.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another shop closing the order: %v, want ErrNotFound", err)
	}
	if _, err := n.CloseOrder(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	waitOrder(t, api, o.ID, "closed", inState(client.StateClosed))

	// A merchant the shop does not act for: the engine refuses.
	if _, err := n.CreateOrder(ctx, "elsewhere", client.CreateOrderRequest{AmountFen: 1, Description: "d", PayAPI: client.PayV2,
		Payer: client.PayerOpenID("o1")}); !errors.Is(err, client.ErrMerchantNotAllowed) {
		t.Fatalf("another merchant: %v, want ErrMerchantNotAllowed", err)
	}
	// An invalid request never leaves the shop.
	var e *client.Error
	if _, err := n.CreateOrder(ctx, d.merchant, client.CreateOrderRequest{AmountFen: 0, Description: "d", PayAPI: client.PayV2,
		Payer: client.PayerOpenID("o1")}); !errors.As(err, &e) || e.Code != client.CodeInvalidFields || e.StatusCode != 0 {
		t.Fatalf("an invalid create: %v", err)
	}
	if _, err := n.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 1, Reason: "a\x00b"}); !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("an invalid refund: %v", err)
	}
}

// TestNATSNeedsTheShopsInbox: a connection whose inboxes are not the
// shop's could hear no answer; NewNATS says so.
func TestNATSNeedsTheShopsInbox(t *testing.T) {
	d := wxflow(t)
	nc, err := nats.Connect(d.dev.NATSURL, nats.UserInfo("nobody", "nothing"))
	if err == nil {
		nc.Close()
		t.Fatal("connected without a key")
	}
	opts, err := client.ShopNATSOptions("demo", "/no/such/seed")
	if err == nil {
		t.Fatalf("options from a missing seed: %v", opts)
	}
	plain := d.natsConn(t, "demo")
	if _, err := client.NewNATS(plain, client.NATSConfig{Shop: "other"}); !errors.Is(err, client.ErrInboxPrefix) {
		t.Fatalf("shop other on demo's connection: %v, want ErrInboxPrefix", err)
	}
}

// TestFeed: the shop's feed hands every event of its merchant to the
// handler at least once, again after the handler's error, and, resumed
// after a stop, what happened meanwhile. A message NATS was made to publish
// into the feed's subject (a publish whose reply subject is the feed) is
// refused, never handled.
func TestFeed(t *testing.T) {
	d := wxflow(t)
	nc := d.natsConn(t, "demo")
	n, err := client.NewNATS(nc, client.NATSConfig{Shop: "demo", Merchants: []string{d.merchant}})
	if err != nil {
		t.Fatal(err)
	}
	api := d.shop(t)
	ctx := context.Background()

	var mu sync.Mutex
	seen := map[string][]client.Delivery{} // by order
	var refused []error
	failOnce := map[string]bool{}
	handler := func(_ context.Context, dl client.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if dl.Type == client.EventSigned && !failOnce[dl.OrderID] {
			failOnce[dl.OrderID] = true
			return errors.New("the shop's database is busy")
		}
		seen[dl.OrderID] = append(seen[dl.OrderID], dl)
		return nil
	}
	opts := client.FeedOptions{Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		Refused: func(subject string, err error) { mu.Lock(); refused = append(refused, err); mu.Unlock() }}
	run := func() (stop func()) {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.Feed(fctx, opts, handler) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Feed: %v", err)
			}
		}
	}
	// The engine makes the shops' feeds within its interval.
	enginetest.WaitFor(t, 30*time.Second, func() error {
		_, err := d.dev.Conns.JS.PushConsumer(ctx, "WXFLOW_EVT", "shopfeed_demo~"+d.merchant)
		return err
	})
	events := func(id string) []client.EventType {
		mu.Lock()
		defer mu.Unlock()
		var out []client.EventType
		for _, dl := range seen[id] {
			out = append(out, dl.Type)
		}
		return out
	}
	has := func(id string, want ...client.EventType) func() error {
		return func() error {
			got := events(id)
			for _, w := range want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					return fmt.Errorf("order %s: events %v, no %s yet", id, got, w)
				}
			}
			return nil
		}
	}

	stop := run()
	first, err := api.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 100, Description: "feed 1", PayAPI: client.PayV3, Payer: client.PayerOpenID("oFeed")})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 30*time.Second, has(first.Order.ID, client.EventCreated, client.EventAuthorized, client.EventPrepaid, client.EventSigned))
	mu.Lock()
	for _, dl := range seen[first.Order.ID] {
		if dl.Type == client.EventSigned && dl.Attempt != 2 || dl.Type != client.EventSigned && dl.Attempt != 1 || dl.Sequence == 0 {
			t.Errorf("delivery %s attempt %d seq %d: want signed delivered again once, the others once", dl.Type, dl.Attempt, dl.Sequence)
		}
		if dl.Order.ID != first.Order.ID || dl.Order.Merchant != d.merchant {
			t.Errorf("delivery of %s carries order %s of %s", first.Order.ID, dl.Order.ID, dl.Order.Merchant)
		}
	}
	mu.Unlock()

	// A publish whose reply subject is the feed's: JetStream answers it
	// there. The feed refuses that answer.
	forged := nats.NewMsg("wxflow.cmd.close.shop_demo")
	forged.Data = []byte(`{"id":"x","verb":"close","order_id":"o_nope","close":{}}`)
	forged.Reply = client.NATSInboxPrefix("demo") + ".feed." + d.merchant
	if err := nc.PublishMsg(forged); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(refused) == 0 {
			return errors.New("the forged message was not refused")
		}
		if !errors.Is(refused[0], client.ErrNotAnEvent) {
			return fmt.Errorf("refused with %v", refused[0])
		}
		return nil
	})
	stop()

	// Away: an order is made and paid. Back: its events come.
	second, err := api.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 200, Description: "feed 2", PayAPI: client.PayV2, Payer: client.PayerOpenID("oFeed2")})
	if err != nil {
		t.Fatal(err)
	}
	v := waitOrder(t, api, second.Order.ID, "signed", inState(client.StateSigned))
	d.pay(t, v.Order.PrepayID)
	waitOrder(t, api, second.Order.ID, "paid", client.Order.Paid)
	if got := events(second.Order.ID); len(got) != 0 {
		t.Fatalf("handled %v while the feed was stopped", got)
	}
	stop = run()
	defer stop()
	enginetest.WaitFor(t, 30*time.Second, has(second.Order.ID, client.EventCreated, client.EventSigned, client.EventNotified))
	mu.Lock()
	defer mu.Unlock()
	for _, dl := range seen[second.Order.ID] {
		if dl.Type == client.EventNotified && !dl.Order.Paid() {
			t.Errorf("the notified event's order is not paid: %+v", dl.Order)
		}
	}
}

// TestWatch: one order's events as they happen, from the moment Watch
// returns: watch, read the order, then wait for the event.
func TestWatch(t *testing.T) {
	d := wxflow(t)
	n, err := client.NewNATS(d.natsConn(t, "demo"), client.NATSConfig{Shop: "demo", Merchants: []string{d.merchant}})
	if err != nil {
		t.Fatal(err)
	}
	api := d.shop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := api.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 300, Description: "watched", PayAPI: client.PayV3,
		Payer: client.PayerOAuthCode(d.code(t, "/sim/oauth/code", "oWatch"))})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Order.ID
	w, err := n.Watch(ctx, client.WatchFilter{OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	v := waitOrder(t, api, id, "signed", inState(client.StateSigned))
	d.pay(t, v.Order.PrepayID)
	for {
		e, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("the watch never heard the order paid: %v", err)
		}
		if e.OrderID != id {
			t.Fatalf("event of order %s in a watch of %s", e.OrderID, id)
		}
		if e.Type == client.EventNotified {
			if !e.Order.Paid() || e.Seq != e.Order.Version {
				t.Fatalf("notified: %+v", e)
			}
			break
		}
	}
	w.Stop()
	w.Stop()
	if _, err := w.Next(ctx); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("Next after Stop: %v", err)
	}
	// A context without a deadline is fine.
	bw, err := n.Watch(context.Background(), client.WatchFilter{Type: client.EventNotified})
	if err != nil {
		t.Fatalf("a watch under a context without a deadline: %v", err)
	}
	bw.Stop()
	if _, err := n.Watch(ctx, client.WatchFilter{Merchant: "elsewhere", OrderID: "o_1/x"}); err == nil {
		t.Fatal("a watch of a subject with a slash")
	}
}

// TestNATSShopAddedLater: a shop added while wxflow runs can connect
// within seconds, is answered by the engine in its inbox (the engine's
// permissions grew with it), and gets its feed.
func TestNATSShopAddedLater(t *testing.T) {
	d := wxflow(t)
	ctx := context.Background()
	secret, err := d.settings.ServerSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stack.EnsureShop(ctx, d.dev.Store, secret, "late", []string{d.merchant}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.AddShop(natsauth.Dir(d.settings.DataDir), "late", []string{d.merchant}); err != nil {
		t.Fatal(err)
	}
	opts, err := client.ShopNATSOptions("late", natsauth.SeedFile(natsauth.Dir(d.settings.DataDir), natsauth.Shop("late")))
	if err != nil {
		t.Fatal(err)
	}
	var nc *nats.Conn
	enginetest.WaitFor(t, 30*time.Second, func() error {
		nc, err = nats.Connect(d.dev.NATSURL, opts...)
		return err
	})
	t.Cleanup(nc.Close)
	n, err := client.NewNATS(nc, client.NATSConfig{Shop: "late", Merchants: []string{d.merchant}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.CreateOrder(ctx, d.merchant, client.CreateOrderRequest{AmountFen: 10, Description: "late", PayAPI: client.PayV2,
		Payer: client.PayerOpenID("oLate"), IdempotencyKey: key(t)})
	if err != nil || res.Pending || res.Order.Shop != "late" {
		t.Fatalf("the late shop's create: %+v %v (Pending: the engine's answer did not reach its inbox)", res, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan client.Delivery, 16)
	go func() {
		_ = n.Feed(fctx, client.FeedOptions{}, func(_ context.Context, dl client.Delivery) error {
			if dl.OrderID == res.Order.ID {
				got <- dl
			}
			return nil
		})
	}()
	select {
	case dl := <-got:
		if dl.Type != client.EventCreated {
			t.Fatalf("the feed's first event of the order: %s", dl.Type)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the late shop's feed delivered nothing")
	}
}
