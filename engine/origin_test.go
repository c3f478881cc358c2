package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	// Another request for the same order id: a conflict, not a merchant refusal.
	c2 := create("oshop", 200)
	c2.ID, c2.Create.RequestHash = "create:oshop:other", "h-other"
	if res := send("wxflow.cmd.create.shop_acme", c2); res.Applied || res.Code != engine.CodeConflict {
		t.Fatalf("a shop's create for an order id taken: %+v, want conflict", res)
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

// TestAnswersOnlyToThePublishersInbox: the engine answers a command only in
// its publisher's own inbox. A command asking for its answer elsewhere
// (an event subject, the JetStream API, another user's inbox) is applied
// but answered nowhere, so no publisher of commands can make the engine
// write where the engine may write.
func TestAnswersOnlyToThePublishersInbox(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, nc, js := newEngine(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := store.AddShop(ctx, engine.Shop{Name: "acme", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Everything the engine publishes on the server is heard here.
	all, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Unsubscribe()
	publish := func(i int, reply string) engine.OrderID {
		t.Helper()
		id := engine.OrderID(fmt.Sprintf("oreply%d", i))
		c := create(id, 100)
		b, _ := json.Marshal(c)
		msg := &nats.Msg{Subject: "wxflow.cmd.create.shop_acme", Data: b, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "shop_acme/"+c.ID)
		msg.Header.Set(engine.ReplyHeader, reply)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		enginetest.WaitFor(t, 10*time.Second, func() error {
			_, err := store.Order(ctx, id)
			return err
		})
		return id
	}
	refused := []string{
		"wxflow.evt.victim.notified.o_victim",
		"$JS.API.STREAM.PURGE.WXFLOW_EVT",
		"_INBOX_api.guessed",
		"_INBOX_shop-other.x",
		"_INBOX_shop-acme", // the prefix itself is no inbox
		"_INBOX_shop-acme.>",
	}
	for i, reply := range refused {
		publish(i, reply)
	}
	// The last: the shop's own inbox is answered. Every message before the
	// answer is checked: none went to a refused subject.
	own := "_INBOX_shop-acme.own"
	publish(len(refused), own)
	for {
		m, err := all.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no answer in the shop's own inbox: %v", err)
		}
		for _, r := range refused {
			if m.Subject == r {
				t.Errorf("the engine published on %s, a reply subject a command asked for", r)
			}
		}
		if m.Subject == own {
			break
		}
	}
}
