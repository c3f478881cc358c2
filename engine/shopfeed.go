package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A shop feed is a shop's durable, at-least-once view of one merchant's
// events: a push consumer of the event stream that the engine makes for
// every (shop, merchant) pair, filtered to wxflow.evt.<merchant>.>, which
// delivers to a subject in the shop's own inbox. The shop's NATS user may
// only subscribe there and ack that consumer's messages (internal/natsauth);
// it gets no JetStream API. That is deliberate: NATS permissions can pin a
// consumer's filter (the filter is a token of the create request's subject
// since NATS 2.9) but not where the server sends what the consumer delivers:
// a push consumer's deliver_subject and a pull request's reply subject are
// published to with the server's own authority, so a shop allowed to make or
// pull a consumer could pour its merchant's events onto any subject, into
// any stream. Only the engine, which is trusted, makes these consumers.

// ShopFeedPrefix starts the name of every shop feed consumer.
const ShopFeedPrefix = "shopfeed_"

// ShopFeedGroup is the deliver group of every shop feed: the shop's
// processes subscribe in this queue group and share the events.
const ShopFeedGroup = "wxflow_feed"

// ShopFeedConsumer is the name of the shop's feed of merchant's events:
// shopfeed_<shop>~<merchant>. Shop and merchant names are of [a-z0-9_-]
// (ValidShopName), so the '~' makes the name one pair's only.
func ShopFeedConsumer(shop, merchant string) string {
	return ShopFeedPrefix + shop + "~" + merchant
}

// ShopFeedSubject is where the shop's feed of merchant's events is
// delivered: _INBOX_shop-<shop>.feed.<merchant>, in the inbox only the
// shop's NATS user may hear.
func ShopFeedSubject(shop, merchant string) string {
	return "_INBOX_shop-" + shop + ".feed." + merchant
}

// shopFeedConfig is the consumer of one feed. It starts at the shop's
// creation: a shop hears every event of its merchants since it exists (as
// long as the event stream keeps them), even those before the engine made
// the consumer. A message not acked in a minute is sent again, forever:
// the shop decides what it has handled.
func shopFeedConfig(shop Shop, merchant string) jetstream.ConsumerConfig {
	start := shop.CreatedAt.UTC()
	return jetstream.ConsumerConfig{
		Durable:        ShopFeedConsumer(shop.Name, merchant),
		Description:    fmt.Sprintf("wxflow: shop %s's feed of merchant %s's events", shop.Name, merchant),
		FilterSubject:  MerchantEvents(merchant),
		DeliverSubject: ShopFeedSubject(shop.Name, merchant),
		DeliverGroup:   ShopFeedGroup,
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        time.Minute,
		MaxDeliver:     -1,
		MaxAckPending:  256,
	}
}

// EnsureShopFeeds makes the feed consumer of every shop and merchant of
// shops that does not exist yet, and deletes the feeds of shops or merchants
// no longer there. A feed that exists is left as it is: its position is the
// shop's. It returns the feeds it made and deleted.
func EnsureShopFeeds(ctx context.Context, js jetstream.JetStream, shops []Shop) (made, deleted []string, err error) {
	stream, err := js.Stream(ctx, EventStream)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: shop feeds: %w", err)
	}
	have := map[string]bool{}
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, ShopFeedPrefix) {
			have[name] = true
		}
	}
	if err := names.Err(); err != nil {
		return nil, nil, fmt.Errorf("engine: shop feeds: %w", err)
	}
	want := map[string]bool{}
	for _, shop := range shops {
		for _, m := range shop.Merchants {
			if !ValidShopName(shop.Name) || !ValidShopName(m) {
				continue // never a subject token that is not one
			}
			name := ShopFeedConsumer(shop.Name, m)
			want[name] = true
			if have[name] {
				continue
			}
			if _, err := stream.CreateOrUpdatePushConsumer(ctx, shopFeedConfig(shop, m)); err != nil {
				return made, deleted, fmt.Errorf("engine: shop feed %s: %w", name, err)
			}
			made = append(made, name)
		}
	}
	for name := range have {
		if want[name] {
			continue
		}
		// Another engine sharing the NATS may have deleted it first.
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return made, deleted, fmt.Errorf("engine: shop feed %s: %w", name, err)
		}
		deleted = append(deleted, name)
	}
	return made, deleted, nil
}

// runShopFeeds keeps the shops' feeds those of the store's shops, every
// ShopFeedInterval, until ctx ends.
func (e *Engine) runShopFeeds(ctx context.Context) error {
	t := time.NewTicker(e.cfg.ShopFeedInterval)
	defer t.Stop()
	for {
		shops, err := e.store.Shops(ctx)
		if err == nil {
			var made, deleted []string
			made, deleted, err = EnsureShopFeeds(ctx, e.js, shops)
			for _, name := range made {
				e.log.Info("shop feed made", "consumer", name)
			}
			for _, name := range deleted {
				e.log.Info("shop feed deleted", "consumer", name)
			}
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn("shop feeds", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
