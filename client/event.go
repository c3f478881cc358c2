package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// EventType names a fact about an order: the state it entered, or one of
// the few facts that are not a state.
type EventType string

// The event types. All but EventRefundQueued, EventRefundFailed,
// EventCloseRequested, EventQueryRequested, EventFlagged and EventResolved
// are the state the order entered; a replay may send one again with From == To.
const (
	EventCreated        EventType = "created"
	EventAuthorized     EventType = "authorized"
	EventPrepaid        EventType = "prepaid"
	EventSigned         EventType = "signed"
	EventNotified       EventType = "notified"      // paid
	EventRefundQueued   EventType = "refund_queued" // a refund was asked: queued; the order stays where it is
	EventRefunding      EventType = "refunding"     // the order's next refund went to WeChat
	EventRefunded       EventType = "refunded"
	EventRefundFailed   EventType = "refund_failed" // WeChat closed a refund: back to the paid state it had
	EventClosed         EventType = "closed"
	EventFailed         EventType = "failed"
	EventCloseRequested EventType = "close_requested" // wxflow is closing the order at WeChat
	EventQueryRequested EventType = "query_requested" // wxflow asks WeChat about the payment
	EventFlagged        EventType = "flagged"         // the order needs a person
	EventResolved       EventType = "resolved"        // a person cleared one flag
)

// Event is one fact about an order, as wxflow publishes it on NATS
// (wxflow.evt.<merchant>.<type>.<order_id>) and posts it to webhooks.
// Events come at least once: handle each idempotently, by ID, or by the
// order's Seq (an event whose Seq is not above what you stored is old news).
type Event struct {
	// ID is the event's own id: the same event delivered twice has the same ID.
	ID      string    `json:"id"`
	Type    EventType `json:"type"`
	OrderID string    `json:"order_id"`
	// Seq is the order's version after the event: 1 for created, then +1.
	Seq       int64     `json:"seq"`
	From      State     `json:"from,omitempty"`
	To        State     `json:"to"`
	At        time.Time `json:"at"`
	CommandID string    `json:"command_id"`
	Actor     string    `json:"actor,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	TraceID   string    `json:"trace_id,omitempty"`
	// Order is the order as it stands after the event.
	Order Order `json:"order"`
	// Refund is the refund the event is about (refund_queued, refunding,
	// refunded, refund_failed), in the engine's words (see [Refund]).
	Refund *Refund `json:"refund,omitempty"`
}

// EventSubjectPrefix starts every event subject:
// wxflow.evt.<merchant>.<type>.<order_id>.
const EventSubjectPrefix = "wxflow.evt."

// Subject is where the event is published.
func (e Event) Subject() string {
	return EventSubjectPrefix + e.Order.Merchant + "." + string(e.Type) + "." + e.OrderID
}

// ErrNotAnEvent is a message that is not a wxflow event: undecodable, or
// saying something else than its subject. Anyone who may publish with a
// reply subject can make NATS put a message on an event subject (JetStream
// answers a publish on its reply subject); such a message is refused, never
// handed to a handler.
var ErrNotAnEvent = errors.New("wxflow: not a wxflow event")

// decodeEvent reads an event and checks it against the subject it came on
// (when subject is not ""): id, type, merchant and order must agree.
func decodeEvent(subject string, data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrNotAnEvent, err)
	}
	switch {
	case e.ID == "" || e.Type == "" || e.OrderID == "" || e.Seq <= 0:
		return e, fmt.Errorf("%w: no id, type, order or seq", ErrNotAnEvent)
	case e.Order.ID != e.OrderID:
		return e, fmt.Errorf("%w: event of order %s carries order %s", ErrNotAnEvent, e.OrderID, e.Order.ID)
	case subject != "" && subject != e.Subject():
		return e, fmt.Errorf("%w: event %s of %s came on %s", ErrNotAnEvent, e.ID, e.Subject(), subject)
	}
	return e, nil
}

// eventFilter is the subject of merchant's events of type t (all when "")
// of one order (all when "").
func eventFilter(merchant string, t EventType, orderID string) string {
	ts, id := string(t), orderID
	if ts == "" {
		ts = "*"
	}
	if id == "" {
		id = "*"
	}
	return EventSubjectPrefix + merchant + "." + ts + "." + id
}

// validToken: a shop's, merchant's or event type's name is one subject
// token of [a-z0-9_-].
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}
