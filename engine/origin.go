package engine

import (
	"strings"
)

// Origin is who published a command, as the last token of its subject
// wxflow.cmd.<verb>.<origin>. NATS permissions let each of wxflow's users
// publish only on its own origin (internal/natsauth), so the engine takes a
// command's origin from the subject it arrived on, never from its payload,
// and refuses a verb its origin may not send.
type Origin string

// The origins of wxflow's own processes; a worker's origin is its name
// (authorize, prepay, sign, query, close, refund).
const (
	OriginAPI    Origin = "api"    // the HTTP API: shops' requests, WeChat's notifications, the admin page
	OriginAdmin  Origin = "admin"  // the `wxflow admin` tools
	OriginEngine Origin = "engine" // the engine itself (expiry, reconciler); never on NATS
)

// shopOriginPrefix starts the origin of a shop publishing on NATS itself.
const shopOriginPrefix = "shop_"

// ShopOrigin is the origin of the shop named name, publishing on NATS.
func ShopOrigin(name string) Origin { return Origin(shopOriginPrefix + name) }

// Shop is the shop an origin names, and whether it names one.
func (o Origin) Shop() (string, bool) {
	name, ok := strings.CutPrefix(string(o), shopOriginPrefix)
	return name, ok && name != ""
}

// IsShop says whether the origin is a shop's.
func (o Origin) IsShop() bool { _, ok := o.Shop(); return ok }

// ReplyPrefix is the start of the subjects where o hears the engine's
// answers: its NATS user's own inbox, which no other user may hear
// (internal/natsauth.InboxPrefix): "_INBOX_api." for the API,
// "_INBOX_shop-<name>." for a shop; "" for an origin that is answered
// nowhere.
func (o Origin) ReplyPrefix() string {
	if name, ok := o.Shop(); ok {
		return "_INBOX_shop-" + name + "."
	}
	if o == OriginAPI {
		return "_INBOX_api."
	}
	return ""
}

// defaultInbox starts nats.go's inboxes when no prefix is set: a deployment
// without NATS users (--no-auth) answers there. Under wxflow's users no one
// may hear it, and the engine may not publish there.
const defaultInbox = "_INBOX."

// replyAllowed says whether the engine may answer a command from o on
// subject reply (the command's Wxflow-Reply header): only in the
// publisher's own inbox. The engine may publish events and use the whole
// JetStream API; an answer sent wherever a command asked would let any
// publisher of commands write there with the engine's authority.
func replyAllowed(o Origin, reply string) bool {
	if strings.ContainsAny(reply, " \t\r\n*>") {
		return false
	}
	if p := o.ReplyPrefix(); p != "" && strings.HasPrefix(reply, p) && len(reply) > len(p) {
		return true
	}
	return strings.HasPrefix(reply, defaultInbox) && len(reply) > len(defaultInbox)
}

// originOfSubject reads the origin from a command subject; "" when the
// subject has none.
func originOfSubject(subject string) Origin {
	rest, ok := strings.CutPrefix(subject, CommandSubjectPrefix)
	if !ok {
		return ""
	}
	_, origin, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(origin, ".") {
		return ""
	}
	return Origin(origin)
}

// workerOrigins are the worker kinds and the verbs each one's results use.
var workerOrigins = map[Origin][]Verb{
	"authorize": {VerbAuthorize, VerbFail, VerbFlag},
	"prepay":    {VerbPrepaid, VerbFail, VerbFlag},
	"sign":      {VerbSigned, VerbFail, VerbFlag},
	"query":     {VerbNotify, VerbClose, VerbFail, VerbFlag}, // paid, or closed at WeChat
	"close":     {VerbClose, VerbNotify, VerbFail, VerbFlag}, // closed, or paid after all (ORDERPAID)
	"refund":    {VerbRefunded, VerbFail, VerbFlag},
	"books":     {VerbReplay, VerbFlag}, // the daily books: query an order WeChat's bill shows paid, flag a discrepancy
}

// mayPublish says whether origin o may send cmd, and if not, why. It is the
// one table of who may ask what: a shop creates, refunds and closes; only
// the API reports a payment WeChat notified, only a worker that queried
// WeChat reports one WeChat answered; each worker reports only its own step.
func mayPublish(o Origin, cmd Command) (bool, string) {
	if cmd.Verb == VerbClose && cmd.Close != nil && cmd.Close.Confirmed && o != "query" && o != "close" {
		// Only WeChat's word, through a worker that asked it, closes an
		// order the payer may hold pay parameters for.
		return false, "only the close and query workers confirm a close"
	}
	if _, shop := o.Shop(); shop {
		switch cmd.Verb {
		case VerbCreate, VerbRefund, VerbClose:
			return true, ""
		}
		return false, "a shop may only create, refund and close"
	}
	switch o {
	case OriginAPI:
		switch cmd.Verb {
		case VerbCreate, VerbRefund, VerbClose, VerbReplay, VerbFlag, VerbResolve:
			return true, ""
		case VerbNotify:
			return cmd.Notify != nil && cmd.Notify.Source == SourceNotification, "the API reports only payments WeChat notified"
		case VerbRefunded:
			return cmd.Refunded != nil && cmd.Refunded.Source == SourceNotification, "the API reports only refunds WeChat notified"
		}
		return false, "not a verb of the API"
	case OriginAdmin:
		switch cmd.Verb {
		case VerbRefund, VerbClose, VerbReplay, VerbResolve:
			return true, ""
		}
		return false, "not a verb of the admin tools"
	}
	verbs, worker := workerOrigins[o]
	if !worker {
		return false, "unknown origin"
	}
	for _, v := range verbs {
		if v != cmd.Verb {
			continue
		}
		switch {
		case v == VerbNotify && (cmd.Notify == nil || cmd.Notify.Source != SourceQuery):
			return false, "a worker reports only payments an order query answered"
		case v == VerbRefunded && (cmd.Refunded == nil || cmd.Refunded.Source == SourceNotification):
			return false, "a worker reports only refunds it asked WeChat about"
		}
		return true, ""
	}
	return false, "not a result of the " + string(o) + " worker"
}
