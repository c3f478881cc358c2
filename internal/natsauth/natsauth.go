// Package natsauth says who may do what on wxflow's NATS: one user per role
// (the engine, the API, the admin tools, each worker kind, each shop) with
// the least publish and subscribe permissions its work needs, the users'
// keys (nkeys) in the data folder, and the authorization block an external
// nats-server needs to enforce the same.
//
// NATS permissions are the authority inside a deployment: only the API may
// publish a command under the origin "api", each worker only under its
// own, a shop only create/refund/close under shop_<name> and only its
// merchants' events reach it. The engine takes a command's origin from its
// subject (engine.Origin), so a permission here is a rule there.
package natsauth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Role names a user of wxflow's NATS.
type Role string

// The roles of wxflow's own processes; Worker and Shop make the others.
const (
	Engine Role = "engine" // intake, outbox relay, expiry, reconciler; declares the streams
	API    Role = "api"    // the HTTP API
	Admin  Role = "admin"  // the `wxflow admin` tools
	// Monitor reads every stream and hears every event, and changes
	// nothing: `wxflow verify`, the bench's clock, a dashboard.
	Monitor Role = "monitor"
)

// workerPrefix and shopPrefix start the roles of workers and shops.
const (
	workerPrefix = "worker-"
	shopPrefix   = "shop-"
)

// Worker is the role of one worker kind ("prepay", "tokens", "all", …).
func Worker(kind string) Role { return Role(workerPrefix + kind) }

// Shop is the role of the shop named name, publishing on NATS itself.
func Shop(name string) Role { return Role(shopPrefix + name) }

// ShopFeedConsumer names the consumer of the event stream that is the shop's
// feed of one merchant's events, as the engine makes it
// (engine.ShopFeedConsumer): the shop may ack its messages. It is a
// consumer the engine makes, not the shop: NATS permissions can hold a
// consumer's filter to the merchant (a token of the create subject since
// NATS 2.9), but not where the server delivers (a push consumer's
// deliver_subject, a pull request's reply), which it publishes to with its
// own authority.
func ShopFeedConsumer(shop, merchant string) string { return "shopfeed_" + shop + "~" + merchant }

// InboxPrefix is where the role's replies come: its own, so that no other
// user can read them. Clients must use it (nats.CustomInboxPrefix).
func InboxPrefix(r Role) string { return "_INBOX_" + string(r) }

// Grant is a role and what its permissions depend on.
type Grant struct {
	Role Role
	// Kinds are the worker kinds a worker role runs (all of them for "all").
	Kinds []string
	// Merchants are the merchants a shop acts for: it hears only their events.
	Merchants []string
	// Shops are the shops the engine answers on NATS: it may publish in
	// their inboxes (Ensure sets it from the shops kept in the folder).
	Shops []string
}

// EventKinds are the worker kinds that consume events and publish results;
// "tokens" is the token refresher.
var EventKinds = []string{"authorize", "prepay", "sign", "query", "close", "refund"}

// BooksKind is the worker kind of the daily books (workers/books): it
// replays and flags orders (wxflow.cmd.*.books) and answers the requests for
// a day's books (wxflow.books.run.>) that the admin tools and the API send.
const BooksKind = "books"

// booksRun is where a day's books are asked for.
const booksRun = "wxflow.books.run.>"

// Internal is the grants of wxflow's own processes: the engine, the API, the
// admin tools, each worker kind, the token refresher and "all".
func Internal() []Grant {
	g := []Grant{{Role: Engine}, {Role: API}, {Role: Admin}, {Role: Monitor}}
	for _, k := range EventKinds {
		g = append(g, Grant{Role: Worker(k), Kinds: []string{k}})
	}
	g = append(g, Grant{Role: Worker("tokens"), Kinds: []string{"tokens"}}, Grant{Role: Worker(BooksKind), Kinds: []string{BooksKind}},
		Grant{Role: Worker("all"), Kinds: append(slices.Clone(EventKinds), "tokens", BooksKind)})
	return g
}

// streamAdmin is the part of the JetStream API only the engine, which
// declares wxflow's streams and buckets, may use: the others may read
// streams and keep their consumers, never change or empty a stream.
var streamAdmin = []string{"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
	"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.SNAPSHOT.>"}

// Permissions are the grant's publish and subscribe permissions.
func (g Grant) Permissions() *server.Permissions {
	inbox := InboxPrefix(g.Role) + ".>"
	if name, ok := strings.CutPrefix(string(g.Role), shopPrefix); ok {
		origin := "shop_" + name
		p := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"wxflow.cmd.create." + origin, "wxflow.cmd.refund." + origin, "wxflow.cmd.close." + origin}},
			Subscribe: &server.SubjectPermission{Allow: []string{inbox}},
		}
		for _, m := range g.Merchants {
			p.Subscribe.Allow = append(p.Subscribe.Allow, "wxflow.evt."+m+".>")
			// Its feed of the merchant's events (engine/shopfeed.go) comes to
			// its inbox; it may ack that consumer's messages, nothing more of
			// JetStream (no consumer of its own: see ShopFeedConsumer).
			p.Publish.Allow = append(p.Publish.Allow, "$JS.ACK.WXFLOW_EVT."+ShopFeedConsumer(name, m)+".>")
		}
		return p
	}
	pub := []string{"$JS.API.>"}
	sub := []string{inbox}
	var deny []string
	var responses *server.ResponsePermission
	switch g.Role {
	case Engine:
		pub = append(pub, "wxflow.evt.>", "$JS.ACK.WXFLOW_CMD.>", InboxPrefix(API)+".>")
		for _, shop := range g.Shops { // answers to the shops' commands on NATS
			pub = append(pub, InboxPrefix(Shop(shop))+".>")
		}
	case API:
		pub = append(pub, "wxflow.cmd.*.api", "$KV.wxflow_admin_sessions.>", "wxflow.tokens.refresh.>", booksRun)
		deny = streamAdmin
	case Admin:
		pub = append(pub, "wxflow.cmd.*.admin", booksRun)
		deny = streamAdmin
	case Monitor:
		sub = append(sub, "wxflow.evt.>", "wxflow.dlq.>", "wxflow.calls.>")
		deny = streamAdmin
	default: // a worker
		deny = streamAdmin
		for _, k := range g.Kinds {
			if k == "tokens" {
				pub = append(pub, "$KV.wxflow_tokens.>", "$KV.wxflow_leases.>")
				sub = append(sub, "wxflow.tokens.refresh.>")
				responses = &server.ResponsePermission{MaxMsgs: 1}
				continue
			}
			if k == BooksKind {
				sub = append(sub, booksRun)
				responses = &server.ResponsePermission{MaxMsgs: 1}
			}
			pub = append(pub, "wxflow.cmd.*."+k, "wxflow.dlq."+k+".>")
			if k == "authorize" {
				pub = append(pub, "$KV.wxflow_codes.>")
			}
		}
		if len(g.Kinds) > 1 || g.Kinds[0] != "tokens" {
			pub = append(pub, "$JS.ACK.WXFLOW_EVT.>", "wxflow.calls.>")
		}
	}
	return &server.Permissions{Publish: &server.SubjectPermission{Allow: pub, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: sub}, Response: responses}
}

// String is the grant as one line, for `wxflow nats config`.
func (g Grant) String() string {
	if len(g.Merchants) > 0 {
		return fmt.Sprintf("%s (merchants %s)", g.Role, strings.Join(g.Merchants, ","))
	}
	return string(g.Role)
}
