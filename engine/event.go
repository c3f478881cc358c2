package engine

import "time"

// EventType names a fact: what the order became, or a request for a worker.
// It is the fourth token of the event subject wxflow.evt.<merchant>.<type>.<order_id>.
type EventType string

// The facts. All but EventCloseRequested, EventFlagged, EventResolved,
// EventQueryRequested and EventRefundQueued are transitions into the state of
// the same name; a replay re-emits one of them with From == To.
const (
	EventCreated        EventType = "created"
	EventAuthorized     EventType = "authorized"
	EventPrepaid        EventType = "prepaid"
	EventSigned         EventType = "signed"
	EventNotified       EventType = "notified"
	EventRefundQueued   EventType = "refund_queued" // a shop or admin asked a refund: queued, the order stays where it is
	EventRefunding      EventType = "refunding"     // the engine sent the order's next queued refund to the refund worker
	EventRefunded       EventType = "refunded"
	EventRefundFailed   EventType = "refund_failed" // WeChat closed a refund: back to the paid state it had
	EventClosed         EventType = "closed"
	EventFailed         EventType = "failed"
	EventCloseRequested EventType = "close_requested" // the close worker must call closeorder
	EventFlagged        EventType = "flagged"         // the order needs a person
	EventResolved       EventType = "resolved"        // a person cleared one flag
	EventQueryRequested EventType = "query_requested" // the query worker must ask WeChat about the payment
)

// EventSubjectPrefix prefixes every event subject,
// wxflow.evt.<merchant>.<type>.<order_id>: a shop subscribes to
// wxflow.evt.<merchant>.> for its merchant's orders (NATS permissions allow
// it no other), or wxflow.evt.<merchant>.*.<order_id> for one order.
const EventSubjectPrefix = "wxflow.evt."

// Event is one applied fact, written to order_events and the outbox in the
// same transaction as the state change, and published from the outbox with
// Nats-Msg-Id = ID, so a relay that crashes after publishing and before
// marking the row sent publishes no duplicate.
type Event struct {
	ID      string    `json:"id"`
	Type    EventType `json:"type"`
	OrderID OrderID   `json:"order_id"`
	// Seq is the order's version after this event: 1 for created, then +1.
	Seq       int64     `json:"seq"`
	From      State     `json:"from,omitempty"`
	To        State     `json:"to"`
	At        time.Time `json:"at"`
	CommandID string    `json:"command_id"`
	Actor     string    `json:"actor,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	TraceID   string    `json:"trace_id,omitempty"`
	// Order is the order as it stands after the event (no secrets in it).
	Order Order `json:"order"`
	// Refund is the refund this event is about (refund_queued, refunding,
	// refunded, refund_failed).
	Refund *Refund `json:"refund,omitempty"`
}

// Subject is where the event is published.
func (e Event) Subject() string { return EventSubject(e.Order.Merchant, e.Type, e.OrderID) }

// EventSubject builds wxflow.evt.<merchant>.<type>.<order_id>.
func EventSubject(merchant string, t EventType, id OrderID) string {
	return EventSubjectPrefix + merchant + "." + string(t) + "." + string(id)
}

// EventFilter is the subject filter of one event type for every order, what a
// worker consumes (e.g. wxflow.evt.*.authorized.* for the prepay worker).
func EventFilter(t EventType) string { return EventSubjectPrefix + "*." + string(t) + ".*" }

// MerchantEvents is the subject filter of every event of one merchant's orders.
func MerchantEvents(merchant string) string { return EventSubjectPrefix + merchant + ".>" }
