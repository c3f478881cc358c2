package engine

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/looplab/fsm"
)

// This file is the order's lifecycle, the one table every rule about states
// comes from: looplab/fsm's events, the states that wait and their deadlines,
// the states an order may be closed or paid in, what a replay re-emits, and
// the moves Verify accepts. docs/ARCHITECTURE.md shows it as a diagram,
// generated from it (TestLifecycleDiagramInDocs fails when they differ).

// move is one row of the lifecycle: the fact a command writes as it moves an
// order from one of from to to. Create is not a move: it inserts the order in
// Created (and may authorize it in the same transaction, a move).
type move struct {
	verb  Verb      // the command that asks for it
	fact  EventType // the event it writes
	from  []State
	to    State
	guard *guard // nil: the move needs nothing but its source state
}

// guard is a condition on the order a move needs besides its source state.
type guard struct {
	name  string // as the diagram shows it
	holds func(o Order) bool
}

// A refund WeChat closed sends the order back to the paid state it had:
// refunded when an earlier refund settled, notified when none did. That is
// one fact (refund_failed) with two destinations, and looplab/fsm keeps one
// destination per event and source. So the table has two honest rows for the
// one fact, each with a guard on the order's refunded amount, rather than a
// second, made-up event: exactly one guard holds for any order
// (TestGuardsExclusive), and the history, Verify and the diagram all see
// refund_failed.
var (
	noneSettled = &guard{name: "none settled before", holds: func(o Order) bool { return o.RefundedFen == 0 }}
	oneSettled  = &guard{name: "one settled before", holds: func(o Order) bool { return o.RefundedFen > 0 }}
)

// moves is every transition the lifecycle allows (docs/ARCHITECTURE.md draws
// them and says why). A payment is accepted from every state where WeChat may
// already hold one, even failed: money that arrived is never dropped. A
// payment for a closed order is refused and flagged for a refund by a person
// (decide). A refund a shop asks moves nothing: it is queued (refund_queued,
// a staying fact, in any paid state), and the engine's send_refund moves the
// order to refunding when it sends the next queued refund to WeChat, one at a
// time and a gap apart (refundqueue.go).
var moves = []move{
	{verb: VerbAuthorize, fact: EventAuthorized, from: []State{Created}, to: Authorized},
	{verb: VerbPrepaid, fact: EventPrepaid, from: []State{Authorized}, to: Prepaid},
	{verb: VerbSigned, fact: EventSigned, from: []State{Prepaid}, to: Signed},
	{verb: VerbNotify, fact: EventNotified, from: []State{Authorized, Prepaid, Signed, Failed}, to: Notified},
	{verb: VerbSendRefund, fact: EventRefunding, from: []State{Notified, Refunded}, to: Refunding},
	{verb: VerbRefunded, fact: EventRefunded, from: []State{Refunding}, to: Refunded},
	{verb: VerbRefunded, fact: EventRefundFailed, from: []State{Refunding}, to: Notified, guard: noneSettled},
	{verb: VerbRefunded, fact: EventRefundFailed, from: []State{Refunding}, to: Refunded, guard: oneSettled},
	{verb: VerbClose, fact: EventClosed, from: []State{Created, Authorized, Prepaid, Signed}, to: Closed},
	{verb: VerbFail, fact: EventFailed, from: []State{Created, Authorized, Prepaid, Signed}, to: Failed},
}

// stateRule is what the lifecycle says of one state beyond its moves.
type stateRule struct {
	state State
	// replay is the event that sets the order's pending step in motion again
	// (what a replay re-emits); "" when the order rests. A state with one
	// waits for something: a worker, WeChat or the payer.
	replay EventType
	// deadline is how long an order may wait in the state before it is stuck.
	deadline time.Duration
	// onPayer: the order waits for its payer, who has until the order's own
	// expires_at; it is stuck only past that (deadline 0).
	onPayer bool
	// paid: WeChat took the payer's money, so another payment is a duplicate,
	// and a refund may be queued.
	paid bool
	// asks is what the reconciler asks WeChat about an order quiet in the
	// state (reconcile.go): the payment, or the refund in flight.
	asks ask
}

// ask is what the reconciler asks WeChat about an order that waits on it.
type ask int

// The reconciler's asks.
const (
	askNothing ask = iota // the order waits on nothing WeChat could tell
	askPayment            // did the payer pay? (a lost payment notification)
	askRefund             // did the refund settle? (a lost refund notification)
)

// states lists every state in lifecycle order. Every worker a replay wakes
// is idempotent (same out_trade_no, same out_refund_no, deterministic
// signatures), so replaying any order any number of times never pays,
// refunds or closes twice. An order waiting on its payer (signed) is replayed
// as a payment query.
var states = []stateRule{
	{state: Created, replay: EventCreated, deadline: time.Minute},
	{state: Authorized, replay: EventAuthorized, deadline: time.Minute},
	{state: Prepaid, replay: EventPrepaid, deadline: time.Minute},
	{state: Signed, replay: EventQueryRequested, onPayer: true, asks: askPayment},
	{state: Notified, paid: true},
	{state: Refunding, replay: EventRefunding, deadline: 30 * time.Minute, paid: true, asks: askRefund},
	{state: Refunded, paid: true},
	{state: Closed},
	{state: Failed},
}

// stayingFacts are the events that move nothing besides replays: a flag, a
// flag resolved by a person, a close asked of the close worker, and a refund
// queued (in a paid state: decide).
var stayingFacts = []EventType{EventFlagged, EventResolved, EventCloseRequested, EventRefundQueued}

// rule is the table's row of state s (a zero row for an unknown state).
func rule(s State) stateRule {
	for _, r := range states {
		if r.state == s {
			return r
		}
	}
	return stateRule{state: s}
}

// name is the move's looplab/fsm event name: its fact, and its guard if any.
func (m move) name() string {
	if m.guard == nil {
		return string(m.fact)
	}
	return string(m.fact) + " [" + m.guard.name + "]"
}

// lifecycleEvents is the table as looplab/fsm takes it (read only).
var lifecycleEvents = fsmEvents()

// fsmEvents turns the table into looplab/fsm's events.
func fsmEvents() fsm.Events {
	out := make(fsm.Events, len(moves))
	for i, m := range moves {
		src := make([]string, len(m.from))
		for j, s := range m.from {
			src[j] = string(s)
		}
		out[i] = fsm.EventDesc{Name: m.name(), Src: src, Dst: string(m.to)}
	}
	return out
}

// errInvalidState: the lifecycle does not allow the fact in the order's state.
var errInvalidState = errors.New("not allowed in this state")

// fire finds the move that writes fact for order o (its guard holding) and
// runs it on a fresh FSM at o's state (no callbacks: the side effects are the
// rows Apply writes); it returns the destination.
func fire(o Order, fact EventType) (State, error) {
	for _, m := range moves {
		if m.fact != fact || m.guard != nil && !m.guard.holds(o) {
			continue
		}
		f := fsm.NewFSM(string(o.State), lifecycleEvents, nil)
		if err := f.Event(context.Background(), m.name()); err != nil {
			var inv fsm.InvalidEventError
			if errors.As(err, &inv) {
				continue // another row of the fact may start here
			}
			return o.State, err
		}
		return State(f.Current()), nil
	}
	return o.State, errInvalidState
}

// can reports whether a move writing fact may start from s.
func can(s State, fact EventType) bool {
	for _, m := range moves {
		if m.fact == fact && slices.Contains(m.from, s) {
			return true
		}
	}
	return false
}

// sources is every state a move writing fact starts from, in lifecycle order.
func sources(fact EventType) []State {
	var out []State
	for _, r := range states {
		if can(r.state, fact) {
			out = append(out, r.state)
		}
	}
	return out
}

// closableStates are the states an order may be closed in (expiry's query).
func closableStates() []State { return sources(EventClosed) }

// waitingStates are the states in which an order waits for something, in
// lifecycle order.
func waitingStates() []State {
	var out []State
	for _, r := range states {
		if r.replay != "" {
			out = append(out, r.state)
		}
	}
	return out
}

// replayable is the event that sets the pending step of an order in motion
// again: the close worker's request for an order whose closing is under way,
// else its state's replay event; false when the order rests.
// close_requested is only ever set on a closable order with a prepay_id.
func replayable(s State, closeRequested bool) (EventType, bool) {
	if closeRequested && can(s, EventClosed) {
		return EventCloseRequested, true
	}
	t := rule(s).replay
	return t, t != ""
}

// allowedMove reports whether the lifecycle allows an event from → to. A fact
// that moves nothing (a replay, a flag, a close or query request) stays put.
func allowedMove(t EventType, from, to State) bool {
	if t == EventCreated {
		return to == Created
	}
	if from == to {
		if slices.Contains(stayingFacts, t) {
			return true
		}
		for _, r := range states {
			if r.replay == t {
				return true
			}
		}
		return false
	}
	for _, m := range moves {
		if m.to == to && slices.Contains(m.from, from) {
			return true
		}
	}
	return false
}

// lifecycleDiagram is the lifecycle as a Mermaid state diagram, drawn by
// looplab/fsm's visualizer from the table (plus create's arrow into created).
func lifecycleDiagram() (string, error) {
	return fsm.VisualizeWithType(fsm.NewFSM(string(Created), lifecycleEvents, nil), fsm.MERMAID)
}

// AllStates lists every state in lifecycle order, for tables and metrics.
var AllStates = func() []State {
	out := make([]State, len(states))
	for i, r := range states {
		out[i] = r.state
	}
	return out
}()

// DefaultDeadlines is how long an order may wait in each waiting state before
// it is stuck. An order waiting for its payer (signed) is stuck only past its
// own expiry, when the expirer should have closed it. It comes from the
// lifecycle table; callers copy it before changing it.
var DefaultDeadlines = func() map[State]time.Duration {
	out := map[State]time.Duration{}
	for _, r := range states {
		if r.replay != "" {
			out[r.state] = r.deadline
		}
	}
	return out
}()

// Waiting reports whether the order waits for something to happen (a worker,
// WeChat or the payer). Orders in other states rest: nothing is pending.
func (s State) Waiting() bool { return rule(s).replay != "" }
