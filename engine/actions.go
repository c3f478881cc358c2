package engine

// Actions is what the lifecycle lets a person ask of an order as it stands:
// the admin page offers these and no others, so it never shows a button
// the engine would refuse. It is derived from the lifecycle table (and the
// order's money), like every other rule about states; the engine still
// decides each command on its own (a close already under way, a refund
// asked twice), so an action offered may yet be refused with a reason.
type Actions struct {
	// Replay: a step is pending (the order waits), so a replay sets it in motion again.
	Replay bool
	// Close: the order may be closed (it is not paid, closed or failed).
	Close bool
	// Refund: the order is paid, money remains to refund and it has fewer
	// than MaxRefundsPerOrder refunds (a refund asked while another runs is
	// queued behind it).
	Refund bool
	// RefundableFen is what remains to refund: paid less the refunds queued,
	// at WeChat and succeeded, in fen (0 when unpaid).
	RefundableFen int64
}

// ActionsOf is what a person may ask of o, whose refunds are refunds.
func ActionsOf(o Order, refunds []Refund) Actions {
	remaining := max(o.PaidFen-committedFen(refunds), 0)
	return Actions{
		Replay:        o.State.Waiting(),
		Close:         can(o.State, EventClosed),
		Refund:        rule(o.State).paid && remaining > 0 && len(refunds) < MaxRefundsPerOrder,
		RefundableFen: remaining,
	}
}
