package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// A shop hears wxflow's events on NATS in two ways:
//
//   - [NATS.Feed]: durable and at least once. wxflow's engine keeps, for
//     each shop and merchant, a consumer of the event stream (its "feed")
//     that starts at the shop's creation and remembers what the shop acked;
//     it delivers into the shop's inbox. An event is handed to the handler
//     until the handler returns nil, across restarts of the shop. The
//     shop's processes share one feed (each event goes to one of them).
//   - [NATS.Watch]: live and at most once: events as they are published,
//     of one merchant, one type or one order; nothing while the shop is
//     away, nothing again on an error.
//
// Why the engine makes the feeds and the shop only acks: NATS permissions
// can hold a consumer the shop creates to its merchant's events (the filter
// is a token of the create request's subject), but not where the server
// delivers what the consumer reads: a push consumer's deliver subject and a
// pull request's reply subject are published to with the server's own
// authority, so a shop that could make or pull a consumer could pour its
// events onto any subject, into any stream. And NATS 2.9, the oldest server
// wxflow supports, has no multi-filter consumers: one feed per merchant.

// The shops' feeds, as the engine makes them (engine/shopfeed.go).
const (
	eventStream = "WXFLOW_EVT"
	feedGroup   = "wxflow_feed"
)

func feedConsumer(shop, merchant string) string { return "shopfeed_" + shop + "~" + merchant }
func feedSubject(shop, merchant string) string {
	return NATSInboxPrefix(shop) + ".feed." + merchant
}

// Delivery is one event handed to a [FeedHandler].
type Delivery struct {
	Event
	// Sequence is the event's position in wxflow's event stream.
	Sequence uint64
	// Attempt is 1 the first time the event is delivered, then 2, 3 …
	// after a handler's error or a crash before the ack.
	Attempt int
}

// FeedHandler handles one event of a feed: nil acks it (it is not
// delivered again); an error has it delivered again after a backoff. The
// context ends when the feed stops.
type FeedHandler func(ctx context.Context, d Delivery) error

// FeedOptions tune [NATS.Feed]. The zero value hears every merchant of the
// shop and every event.
type FeedOptions struct {
	// Merchants are the feeds to hear: NATSConfig.Merchants when empty.
	Merchants []string
	// Types, when given, are the event types handed to the handler; the
	// others are acked unseen. The feed is the shop's one durable view of a
	// merchant: run one feed (in as many processes as you like) per shop,
	// not one per type.
	Types []EventType
	// Backoff is the wait before an event the handler failed is delivered
	// again, by attempt: 1 s, 2 s, 4 s … up to a minute when nil.
	Backoff func(attempt int) time.Duration
	// Refused hears each message that is not a wxflow event of the feed
	// ([ErrNotAnEvent]); such a message is never handed to the handler
	// (one in the stream is terminated). Optional.
	Refused func(subject string, err error)
}

func defaultBackoff(attempt int) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// Feed hands the events of the shop's feeds to h, one at a time, until ctx
// ends (then it returns nil, once the handler has returned and what was
// received but not handled is given back), or the connection closes. An
// event the handler took but did not ack when the process died comes again
// within a minute. Events of one order come in order, but for redeliveries:
// handle each idempotently (by Event.ID, or the order's Seq).
func (n *NATS) Feed(ctx context.Context, o FeedOptions, h FeedHandler) error {
	merchants := o.Merchants
	if len(merchants) == 0 {
		merchants = n.cfg.Merchants
	}
	if len(merchants) == 0 {
		return errors.New("client: Feed: no merchant (NATSConfig.Merchants)")
	}
	backoff := o.Backoff
	if backoff == nil {
		backoff = defaultBackoff
	}
	msgs := make(chan *nats.Msg, 256)
	subs := map[*nats.Subscription]string{} // the merchant of each feed
	defer func() {
		for sub := range subs {
			_ = sub.Unsubscribe()
		}
		// Given back at once, not after the ack wait: another process may take them.
		for {
			select {
			case m := <-msgs:
				_ = m.Nak()
			default:
				return
			}
		}
	}()
	for _, m := range merchants {
		if !validToken(m) {
			return fmt.Errorf("client: Feed: merchant name %q: want [a-z0-9_-]", m)
		}
		sub, err := n.nc.ChanQueueSubscribe(feedSubject(n.cfg.Shop, m), feedGroup, msgs)
		if err != nil {
			return fmt.Errorf("client: Feed %s: %w", m, err)
		}
		subs[sub] = m
	}
	// The connection closing closes the subscriptions, and ends the feed.
	var closed <-chan nats.SubStatus
	for sub := range subs {
		closed = sub.StatusChanged(nats.SubscriptionClosed)
		break
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return nats.ErrConnectionClosed
		case m := <-msgs:
			n.deliver(ctx, m, subs[m.Sub], o, backoff, h)
		}
	}
}

// deliver checks one message of the feed of merchant and hands it to h.
func (n *NATS) deliver(ctx context.Context, m *nats.Msg, merchant string, o FeedOptions, backoff func(int) time.Duration, h FeedHandler) {
	refuse := func(err error) {
		if o.Refused != nil {
			o.Refused(m.Subject, err)
		}
	}
	meta, err := m.Metadata()
	if err != nil || meta.Stream != eventStream || meta.Consumer != feedConsumer(n.cfg.Shop, merchant) {
		// Not the feed's: someone made NATS publish into the shop's inbox.
		refuse(fmt.Errorf("%w: not a message of feed %s", ErrNotAnEvent, feedConsumer(n.cfg.Shop, merchant)))
		return
	}
	e, err := decodeEvent(m.Subject, m.Data)
	if err == nil && e.Order.Merchant != merchant {
		err = fmt.Errorf("%w: merchant %s's event in feed %s", ErrNotAnEvent, e.Order.Merchant, merchant)
	}
	if err != nil {
		refuse(err)
		_ = m.Term() // in the stream, but no event: never again
		return
	}
	if len(o.Types) > 0 && !slices.Contains(o.Types, e.Type) {
		_ = m.Ack()
		return
	}
	if err := h(ctx, Delivery{Event: e, Sequence: meta.Sequence.Stream, Attempt: int(meta.NumDelivered)}); err != nil {
		if ctx.Err() != nil {
			_ = m.Nak()
			return
		}
		_ = m.NakWithDelay(backoff(int(meta.NumDelivered)))
		return
	}
	_ = m.Ack()
}

// WatchFilter picks the events [NATS.Watch] hears.
type WatchFilter struct {
	// Merchant is one of the shop's merchants; empty: every one of NATSConfig.Merchants.
	Merchant string
	// Type is one event type; empty: every type.
	Type EventType
	// OrderID is one order; empty: every order.
	OrderID string
}

// Watcher hears events as they are published ([NATS.Watch]). It is for
// one goroutine.
type Watcher struct {
	subs   []*nats.Subscription
	msgs   chan *nats.Msg
	closed <-chan nats.SubStatus
}

// Watch begins to hear the events matching f as they are published: when
// it returns, the server has the subscription, so an event published after
// is heard. Read them with [Watcher.Next]; Stop when done. It is at most
// once: an event published before Watch, or while the reader is far behind
// (past 1024 events), is not heard; to miss none, use [NATS.Feed]. To wait
// for an order to reach a state: Watch, then read the order
// ([Client.GetOrder]), then Next until the event comes.
func (n *NATS) Watch(ctx context.Context, f WatchFilter) (*Watcher, error) {
	merchants := n.cfg.Merchants
	if f.Merchant != "" {
		merchants = []string{f.Merchant}
	}
	if len(merchants) == 0 {
		return nil, errors.New("client: Watch: no merchant (NATSConfig.Merchants)")
	}
	if f.Type != "" && !validToken(string(f.Type)) || f.OrderID != "" && !validOrderID(f.OrderID) {
		return nil, fmt.Errorf("client: Watch: type %q or order %q is not one subject token", f.Type, f.OrderID)
	}
	w := &Watcher{msgs: make(chan *nats.Msg, 1024)}
	for _, m := range merchants {
		if !validToken(m) {
			w.Stop()
			return nil, fmt.Errorf("client: Watch: merchant name %q: want [a-z0-9_-]", m)
		}
		sub, err := n.nc.ChanSubscribe(eventFilter(m, f.Type, f.OrderID), w.msgs)
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("client: Watch %s: %w", m, err)
		}
		w.subs = append(w.subs, sub)
		if w.closed == nil {
			w.closed = sub.StatusChanged(nats.SubscriptionClosed)
		}
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok { // nats.go flushes only under a deadline
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := n.nc.FlushWithContext(fctx); err != nil {
		w.Stop()
		return nil, fmt.Errorf("client: Watch: %w", err)
	}
	return w, nil
}

// Next returns the next event heard, waiting for one until ctx ends (its
// error) or the subscription closes (nats.ErrConnectionClosed). A message
// that is not a wxflow event ([ErrNotAnEvent]) is skipped.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-w.closed:
			return Event{}, nats.ErrConnectionClosed
		case m := <-w.msgs:
			if e, err := decodeEvent(m.Subject, m.Data); err == nil {
				return e, nil
			}
		}
	}
}

// Stop ends the watch. It is safe to call more than once.
func (w *Watcher) Stop() {
	for _, sub := range w.subs {
		_ = sub.Unsubscribe()
	}
}
