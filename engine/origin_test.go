package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestOriginFromSubject: the engine takes a command's origin from the
// subject it arrived on (which NATS permissions tie to its publisher), never
// from the payload. A command its origin may not send is answered
// forbidden_origin and not recorded, so it cannot take a genuine command's
// id; a shop's orders are its own, whatever the payload says.
func TestOriginFromSubject(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, nc, js := newEngine(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	send := func(subject string, c engine.Command) engine.Result {
		t.Helper()
		inbox := nats.NewInbox()
		replies, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer replies.Unsubscribe()
		b, _ := json.Marshal(c)
		msg := &nats.Msg{Subject: subject, Data: b, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, subject+"/"+c.ID)
		msg.Header.Set(engine.ReplyHeader, inbox)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		r, err := replies.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("%s: no answer: %v", subject, err)
		}
		var res engine.Result
		_ = json.Unmarshal(r.Data, &res)
		return res
	}

	// A shop creates an order on its own subject, claiming another shop in
	// the payload: the order is the subject's shop's. It acts only for its
	// merchants; a shop the store does not know acts for none.
	if err := store.AddShop(ctx, engine.Shop{Name: "acme", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	foreign := create("oforeign", 100)
	foreign.Create.Merchant = "elsewhere"
	if res := send("wxflow.cmd.create.shop_acme", foreign); res.Applied || res.Code != engine.CodeMerchantNotAllowed {
		t.Fatalf("a shop's create for another merchant: %+v, want merchant_not_allowed", res)
	}
	if res := send("wxflow.cmd.create.shop_ghost", create("oghost", 100)); res.Applied || res.Code != engine.CodeMerchantNotAllowed {
		t.Fatalf("an unknown shop's create: %+v, want merchant_not_allowed", res)
	}
	c := create("oshop", 100)
	c.Create.Shop = "other"
	if res := send("wxflow.cmd.create.shop_acme", c); !res.Applied || res.Order.Shop != "acme" {
		t.Fatalf("shop create: %+v, want applied and the order acme's", res)
	}
	// Forged: a payment from a shop, a payment on a create subject, a
	// worker's step from another worker, a confirmed close from the API.
	paid := engine.Command{ID: engine.NotifyCommandID("oshop", "4200", 100), Verb: engine.VerbNotify, OrderID: "oshop",
		Notify: &engine.Payment{TransactionID: "4200", AmountFen: 100, Source: engine.SourceNotification}}
	forged := []struct {
		subject string
		cmd     engine.Command
	}{
		{"wxflow.cmd.notify.shop_acme", paid},
		{"wxflow.cmd.create.api", paid},
		{"wxflow.cmd.notify.prepay", paid},
		{"wxflow.cmd.notify.query", paid}, // source notification: only the API reports those
		{"wxflow.cmd.prepaid.sign", engine.Command{ID: "prepaid:x", Verb: engine.VerbPrepaid, OrderID: "oshop", Prepaid: &engine.PrepaidInfo{PrepayID: "wx1"}}},
		{"wxflow.cmd.close.api", engine.Command{ID: "close:x", Verb: engine.VerbClose, OrderID: "oshop", Close: &engine.CloseAsk{Confirmed: true}}},
		{"wxflow.cmd.notify", paid}, // no origin at all
		// The books ask WeChat through the query worker, never pay or close themselves.
		{"wxflow.cmd.notify.books", paid},
		{"wxflow.cmd.close.books", engine.Command{ID: "close:b", Verb: engine.VerbClose, OrderID: "oshop", Close: &engine.CloseAsk{}}},
	}
	for _, f := range forged {
		if res := send(f.subject, f.cmd); res.Applied || res.Code != engine.CodeForbiddenOrigin {
			t.Errorf("%s %s: %+v, want refused forbidden_origin", f.subject, f.cmd.Verb, res)
		}
	}
	// The genuine notification, with the id a forged one used, still pays the order.
	if res := send("wxflow.cmd.notify.api", paid); !res.Applied && res.Code != engine.CodeInvalidState {
		t.Fatalf("the genuine notification after forged ones: %+v", res)
	}
	if h, _ := store.History(ctx, "oshop"); len(h) == 0 {
		t.Fatal("no history")
	} else {
		for _, e := range h {
			if e.Code == string(engine.CodeForbiddenOrigin) || e.Code == string(engine.CodeDuplicateCommand) {
				t.Errorf("a forged command left a trace in the history: %+v", e)
			}
		}
	}
	// Another shop's order is no order to a shop.
	closeIt := engine.Command{ID: "close:1", Verb: engine.VerbClose, OrderID: "oshop", Close: &engine.CloseAsk{}}
	if res := send("wxflow.cmd.close.shop_other", closeIt); res.Applied || res.Code != engine.CodeUnknownOrder {
		t.Fatalf("another shop closing acme's order: %+v, want unknown_order", res)
	}
}
