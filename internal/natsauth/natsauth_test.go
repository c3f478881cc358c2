package natsauth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
)

// server starts the embedded server with wxflow's users (and shop "acme",
// acting for merchant m1) and returns the folder of their seeds.
func server(t *testing.T) (*natsembed.Server, string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := natsauth.AddShop(dir, "acme", []string{"m1"}); err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.Ensure(dir, natsauth.Internal())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), Users: users.Nkeys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	return ns, dir
}

// connect connects as role; violations of its permissions arrive on the channel.
func connect(t *testing.T, ns *natsembed.Server, dir string, r natsauth.Role) (*nats.Conn, chan error) {
	t.Helper()
	opts, err := natsauth.ClientOptions(natsauth.SeedFile(dir, r), r)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", r, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused publishes on subject, then on a subject no one may publish to,
// and says whether the first was refused: the server answers violations in
// order, so the second's refusal coming first proves the first passed.
func refused(t *testing.T, nc *nats.Conn, errs chan error, subject string) bool {
	t.Helper()
	const sentinel = "wxflow.nobody.may.publish.here"
	if err := nc.Publish(subject, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(sentinel, nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				continue
			}
			if strings.Contains(err.Error(), sentinel) {
				return false
			}
			if strings.Contains(err.Error(), `"`+subject+`"`) {
				<-errs // the sentinel's
				return true
			}
		case <-timeout:
			t.Fatalf("no answer from the server about %s", subject)
		}
	}
}

// TestPublishPermissions: each role publishes only what its work needs.
func TestPublishPermissions(t *testing.T) {
	ns, dir := server(t)
	tests := []struct {
		role    natsauth.Role
		subject string
		allowed bool
	}{
		// Only the API reports a payment WeChat notified.
		{natsauth.API, "wxflow.cmd.notify.api", true},
		{natsauth.Worker("prepay"), "wxflow.cmd.notify.api", false},
		{natsauth.Shop("acme"), "wxflow.cmd.notify.api", false},
		{natsauth.Admin, "wxflow.cmd.notify.api", false},
		{natsauth.Shop("acme"), "wxflow.cmd.notify.shop_acme", false},
		// Each worker publishes only its own results.
		{natsauth.Worker("prepay"), "wxflow.cmd.prepaid.prepay", true},
		{natsauth.Worker("prepay"), "wxflow.cmd.signed.sign", false},
		{natsauth.Worker("sign"), "wxflow.cmd.prepaid.prepay", false},
		{natsauth.Worker("query"), "wxflow.cmd.notify.query", true},
		{natsauth.Worker("refund"), "wxflow.cmd.notify.query", false},
		{natsauth.Worker("all"), "wxflow.cmd.refunded.refund", true},
		{natsauth.Worker("all"), "wxflow.cmd.create.api", false},
		// A shop creates, refunds and closes under its own name only.
		{natsauth.Shop("acme"), "wxflow.cmd.create.shop_acme", true},
		{natsauth.Shop("acme"), "wxflow.cmd.refund.shop_acme", true},
		{natsauth.Shop("acme"), "wxflow.cmd.close.shop_acme", true},
		{natsauth.Shop("acme"), "wxflow.cmd.create.shop_other", false},
		{natsauth.Shop("acme"), "wxflow.cmd.create.api", false},
		{natsauth.Shop("acme"), "wxflow.evt.m1.notified.o_1", false},
		{natsauth.Shop("acme"), "$JS.API.STREAM.INFO.WXFLOW_EVT", false},
		// A shop acks its own feed's messages and uses no other JetStream API:
		// no consumer of its own, no pull, no other feed's acks.
		{natsauth.Shop("acme"), "$JS.ACK.WXFLOW_EVT.shopfeed_acme~m1.1.5.5.1.0", true},
		{natsauth.Shop("acme"), "$JS.ACK.WXFLOW_EVT.shopfeed_other~m1.1.5.5.1.0", false},
		{natsauth.Shop("acme"), "$JS.ACK.WXFLOW_EVT.prepay.1.5.5.1.0", false},
		{natsauth.Shop("acme"), "$JS.API.CONSUMER.CREATE.WXFLOW_EVT.shopfeed_acme~m1.wxflow.evt.m1.>", false},
		{natsauth.Shop("acme"), "$JS.API.CONSUMER.MSG.NEXT.WXFLOW_EVT.shopfeed_acme~m1", false},
		{natsauth.Shop("acme"), "$JS.API.CONSUMER.DURABLE.CREATE.WXFLOW_EVT.x", false},
		// The engine answers the shops' commands in their inboxes, nowhere else.
		{natsauth.Engine, "_INBOX_shop-acme.x", true},
		{natsauth.Engine, "_INBOX_shop-other.x", false},
		{natsauth.API, "_INBOX_shop-acme.x", false},
		// Only the engine publishes events and changes streams.
		{natsauth.Engine, "wxflow.evt.m1.notified.o_1", true},
		{natsauth.API, "wxflow.evt.m1.notified.o_1", false},
		{natsauth.Worker("close"), "wxflow.evt.m1.closed.o_1", false},
		{natsauth.Engine, "$JS.API.STREAM.UPDATE.WXFLOW_EVT", true},
		{natsauth.API, "$JS.API.STREAM.DELETE.WXFLOW_EVT", false},
		{natsauth.Worker("refund"), "$JS.API.STREAM.PURGE.WXFLOW_CMD", false},
		// The shared tokens are written by the refresher alone.
		{natsauth.Worker("tokens"), "$KV.wxflow_tokens.wx1", true},
		{natsauth.API, "$KV.wxflow_tokens.wx1", false},
		// The books replay and flag as themselves; the admin tools and the
		// API ask for a day's books, a shop cannot.
		{natsauth.Worker("books"), "wxflow.cmd.replay.books", true},
		{natsauth.Worker("books"), "wxflow.cmd.notify.books", true}, // NATS lets it; the engine refuses the verb (origin.go)
		{natsauth.Worker("books"), "wxflow.cmd.replay.query", false},
		{natsauth.Worker("all"), "wxflow.cmd.flag.books", true},
		{natsauth.Admin, "wxflow.books.run.default", true},
		{natsauth.API, "wxflow.books.run.default", true},
		{natsauth.Shop("acme"), "wxflow.books.run.default", false},
		{natsauth.Worker("prepay"), "wxflow.books.run.default", false},
	}
	conns := map[natsauth.Role]*nats.Conn{}
	errs := map[natsauth.Role]chan error{}
	for _, tc := range tests {
		if conns[tc.role] == nil {
			conns[tc.role], errs[tc.role] = connect(t, ns, dir, tc.role)
		}
		if got := !refused(t, conns[tc.role], errs[tc.role], tc.subject); got != tc.allowed {
			t.Errorf("%s publishing on %s: allowed %v, want %v", tc.role, tc.subject, got, tc.allowed)
		}
	}
}

// TestShopHearsOnlyItsMerchants: a shop subscribes to its merchants'
// events, and to no one else's, nor to other users' replies.
func TestShopHearsOnlyItsMerchants(t *testing.T) {
	ns, dir := server(t)
	shop, errs := connect(t, ns, dir, natsauth.Shop("acme"))
	for _, tc := range []struct {
		subject string
		allowed bool
	}{
		{"wxflow.evt.m1.>", true},
		{"wxflow.evt.m1.notified.*", true},
		{"wxflow.evt.m2.>", false},
		{"wxflow.evt.>", false},
		{"wxflow.cmd.>", false},
		{"_INBOX_api.>", false},
		{"_INBOX_shop-acme.x", true},
	} {
		sub, err := shop.SubscribeSync(tc.subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := shop.Flush(); err != nil {
			t.Fatal(err)
		}
		// A refused subscription is answered at once and in order: a
		// round trip after it has seen the answer.
		if _, err := shop.RTT(); err != nil {
			t.Fatal(err)
		}
		denied := false
	drain:
		for {
			select {
			case err := <-errs:
				denied = denied || errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), tc.subject)
			default:
				break drain
			}
		}
		if denied == tc.allowed {
			t.Errorf("shop subscribing to %s: allowed %v, want %v", tc.subject, !denied, tc.allowed)
		}
		_ = sub.Unsubscribe()
	}
}

// TestNoUserNoEntry: without a key, nothing connects.
func TestNoUserNoEntry(t *testing.T) {
	ns, _ := server(t)
	if nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to a server with wxflow's users")
	}
}

// TestServerConfig: the authorization block names every user with its permissions.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	users, err := natsauth.Ensure(dir, natsauth.Internal())
	if err != nil {
		t.Fatal(err)
	}
	conf := natsauth.ServerConfig(users)
	for _, want := range []string{"authorization {", users.Nkeys[0].Nkey, `"wxflow.cmd.*.api"`, "# worker-prepay", "allow_responses"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the config lacks %s:\n%s", want, conf)
		}
	}
	again, err := natsauth.Ensure(dir, natsauth.Internal())
	if err != nil || again.Nkeys[0].Nkey != users.Nkeys[0].Nkey {
		t.Fatal("a second Ensure made new keys")
	}
}

// TestConventionsMatchTheEngine: the names natsauth grants are those the
// engine uses: a shop's feed consumer and where it is delivered, and the
// inbox the engine answers a shop's commands in.
func TestConventionsMatchTheEngine(t *testing.T) {
	if got, want := natsauth.ShopFeedConsumer("acme", "m1"), engine.ShopFeedConsumer("acme", "m1"); got != want {
		t.Errorf("feed consumer %q, the engine's %q", got, want)
	}
	inbox := natsauth.InboxPrefix(natsauth.Shop("acme")) + "."
	if !strings.HasPrefix(engine.ShopFeedSubject("acme", "m1"), inbox) {
		t.Errorf("the feed is delivered to %s, outside the shop's inbox %s", engine.ShopFeedSubject("acme", "m1"), inbox)
	}
	if got := engine.ShopOrigin("acme").ReplyPrefix(); got != inbox {
		t.Errorf("the engine answers shop acme in %s, its inbox is %s", got, inbox)
	}
	if got := engine.OriginAPI.ReplyPrefix(); got != natsauth.InboxPrefix(natsauth.API)+"." {
		t.Errorf("the engine answers the API in %s", got)
	}
}
