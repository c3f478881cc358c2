package engine

import (
	"context"
	"errors"

	"github.com/looplab/fsm"
)

// FSM event names: the moves of the lifecycle. Create is not among them: it
// inserts the order in Created.
const (
	fsmAuthorize          = "authorize"
	fsmPrepaid            = "prepaid"
	fsmSigned             = "signed"
	fsmNotify             = "notify"
	fsmRefund             = "refund"
	fsmRefunded           = "refunded"
	fsmRefundFailed       = "refund_failed"         // no refund settled before: back to notified
	fsmRefundFailedResume = "refund_failed_partial" // an earlier refund settled: back to refunded
	fsmClose              = "close"
	fsmFail               = "fail"
)

func from(states ...State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// lifecycle is the only place a transition is declared (DESIGN.md). A payment
// is accepted from every state where WeChat may already hold one, even
// failed: money that arrived is never dropped. A payment for a closed order
// is refused and flagged for a refund by a person.
var lifecycle = fsm.Events{
	{Name: fsmAuthorize, Src: from(Created), Dst: string(Authorized)},
	{Name: fsmPrepaid, Src: from(Authorized), Dst: string(Prepaid)},
	{Name: fsmSigned, Src: from(Prepaid), Dst: string(Signed)},
	{Name: fsmNotify, Src: from(Authorized, Prepaid, Signed, Failed), Dst: string(Notified)},
	{Name: fsmRefund, Src: from(Notified, Refunded), Dst: string(Refunding)},
	{Name: fsmRefunded, Src: from(Refunding), Dst: string(Refunded)},
	{Name: fsmRefundFailed, Src: from(Refunding), Dst: string(Notified)},
	{Name: fsmRefundFailedResume, Src: from(Refunding), Dst: string(Refunded)},
	{Name: fsmClose, Src: from(Created, Authorized, Prepaid, Signed), Dst: string(Closed)},
	{Name: fsmFail, Src: from(Created, Authorized, Prepaid, Signed), Dst: string(Failed)},
}

// errInvalidState is returned by transition for a move the lifecycle does not allow.
var errInvalidState = errors.New("not allowed in this state")

// transition fires event on a fresh FSM at state (no callbacks: the side
// effects are the rows Apply writes) and returns the destination.
func transition(state State, event string) (State, error) {
	f := fsm.NewFSM(string(state), lifecycle, nil)
	if err := f.Event(context.Background(), event); err != nil {
		var inv fsm.InvalidEventError
		if errors.As(err, &inv) {
			return state, errInvalidState
		}
		return state, err
	}
	return State(f.Current()), nil
}

// canTransition reports whether event is allowed at state.
func canTransition(state State, event string) bool {
	return fsm.NewFSM(string(state), lifecycle, nil).Can(event)
}
