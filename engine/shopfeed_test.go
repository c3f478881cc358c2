package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestShopFeeds: the engine makes a feed consumer per shop and merchant,
// delivering that merchant's events (and no other's) to the shop's inbox
// from the shop's creation on, again after a nak; it deletes the feeds of
// merchants a shop no longer acts for and leaves other consumers alone.
func TestShopFeeds(t *testing.T) {
	ctx := context.Background()
	_, nc, js := enginetest.StartNATS(t)
	if err := engine.Provision(ctx, js, engine.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	// An event before the shop existed, and one after, for each merchant.
	old := engine.Event{ID: "e0", Type: engine.EventCreated, OrderID: "o0", Seq: 1, To: engine.Created, At: time.Now(),
		Order: engine.Order{ID: "o0", Merchant: "m1"}}
	if _, err := js.Publish(ctx, old.Subject(), mustJSON(t, old)); err != nil {
		t.Fatal(err)
	}
	born := time.Now() // after the stream stored the old event
	shops := []engine.Shop{{Name: "acme", Merchants: []string{"m1", "m2"}, CreatedAt: born}}
	made, deleted, err := engine.EnsureShopFeeds(ctx, js, shops)
	if err != nil || len(made) != 2 || len(deleted) != 0 {
		t.Fatalf("first ensure: made %v deleted %v: %v", made, deleted, err)
	}
	if made, _, err := engine.EnsureShopFeeds(ctx, js, shops); err != nil || len(made) != 0 {
		t.Fatalf("second ensure made %v (%v): feeds that exist are left as they are", made, err)
	}
	sub, err := nc.QueueSubscribeSync(engine.ShopFeedSubject("acme", "m1"), engine.ShopFeedGroup)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m2", "m1"} {
		ev := engine.Event{ID: "e-" + m, Type: engine.EventNotified, OrderID: "o1", Seq: 5, To: engine.Notified, At: time.Now(),
			Order: engine.Order{ID: "o1", Merchant: m}}
		if _, err := js.Publish(ctx, ev.Subject(), mustJSON(t, ev)); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := msg.Metadata()
	if err != nil || msg.Subject != "wxflow.evt.m1.notified.o1" || meta.Consumer != engine.ShopFeedConsumer("acme", "m1") {
		t.Fatalf("the feed delivered %s (%+v, %v): want m1's event after the shop's creation", msg.Subject, meta, err)
	}
	// A nak sends it again; an ack is the end of it.
	if err := msg.Nak(); err != nil {
		t.Fatal(err)
	}
	again, err := sub.NextMsg(10 * time.Second)
	if err != nil || again.Subject != msg.Subject {
		t.Fatalf("after a nak: %v %v", again, err)
	}
	if meta, _ := again.Metadata(); meta.NumDelivered != 2 {
		t.Fatalf("redelivery %d, want 2", meta.NumDelivered)
	}
	if err := again.AckSync(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err != nats.ErrTimeout {
		t.Fatalf("after the ack: %v %v; want nothing more (the old event predates the shop, m2's is another feed)", m, err)
	}

	// A worker's consumer is not the engine's to delete; m2's feed goes.
	if _, err := js.CreateOrUpdateConsumer(ctx, engine.EventStream, jetstreamDurable("prepay")); err != nil {
		t.Fatal(err)
	}
	shops[0].Merchants = []string{"m1"}
	_, deleted, err = engine.EnsureShopFeeds(ctx, js, shops)
	if err != nil || !slices.Equal(deleted, []string{engine.ShopFeedConsumer("acme", "m2")}) {
		t.Fatalf("deleted %v (%v), want m2's feed only", deleted, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jetstreamDurable(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: name, FilterSubject: engine.EventFilter(engine.EventAuthorized), AckPolicy: jetstream.AckExplicitPolicy}
}
