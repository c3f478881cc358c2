package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Result is what became of a command. Applied is false for a refusal, which
// is recorded with its Code and Reason and changes nothing (but a flag).
type Result struct {
	Applied bool        `json:"applied"`
	Code    RefusalCode `json:"code,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Order   Order       `json:"order"`
	Events  []Event     `json:"events,omitempty"`
}

// change is what a command does to an order, decided before anything is written.
type change struct {
	order     Order   // the order after the command
	insert    bool    // a new order
	events    []Event // facts, in order (IDs and seqs filled by write)
	newRefund *Refund
	closeReq  bool // remember that closing was asked of the close worker
	reqHash   string
	// reconcileAttempts and reconcileAt are the reconciler's schedule of the
	// order after the change: kept while the order stays in its state, begun
	// again when it enters another (schedule).
	reconcileAttempts int
	reconcileAt       *time.Time
	// paidAt is the payment's time at WeChat when the change records a
	// payment (the day of the books it belongs to); zero otherwise.
	paidAt time.Time
	// setRefunds are existing refunds' new states (a refund settled, the
	// next one sent).
	setRefunds []Refund
	// refundDue is when the order's next queued refund is sent after the
	// change (nil: none is queued, or one is at WeChat): decide sets it on
	// every refund command, and every other change keeps the order's.
	refundDue *time.Time
}

var errVersionConflict = errors.New("engine: order changed concurrently")

// Apply applies one command in ONE transaction: the order's new state, its
// event rows, their outbox rows and the command record commit together, or
// nothing does. A command that does not fit is recorded as refused with a
// code and a reason and returns Applied=false with a nil error; the error is
// for infrastructure failures only (the caller retries those).
func (e *Engine) Apply(ctx context.Context, cmd Command) (Result, error) {
	if err := validCommand(cmd); err != nil {
		if e.cfg.Observer != nil {
			e.cfg.Observer.Refused(cmd.Verb, CodeInvalid)
		}
		return Result{Code: CodeInvalid, Reason: err.Error()}, nil
	}
	res, err := e.applyRetrying(ctx, cmd, false)
	if err != nil && !isBusy(err) && ctx.Err() == nil {
		// The command's id was recorded before (errCommandSeen), or deciding
		// it failed, as a duplicate's facts can make it fail: apply it again,
		// looking for its id first.
		res, err = e.applyRetrying(ctx, cmd, true)
	}
	if err != nil {
		return res, storeError(err)
	}
	e.committed(cmd, res)
	return res, nil
}

// applyRetrying applies cmd in a transaction of its own, again while the
// store is busy; seenFirst as applyIn.
func (e *Engine) applyRetrying(ctx context.Context, cmd Command, seenFirst bool) (Result, error) {
	var res Result
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		res, err = e.applyOnce(ctx, cmd, seenFirst)
		if !isBusy(err) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return res, err
}

// committed wakes the relay for new events and tells the observer, once a
// command's transaction has committed.
func (e *Engine) committed(cmd Command, res Result) {
	if len(res.Events) > 0 {
		e.relay.Wake()
	}
	if e.cfg.Observer != nil {
		for _, ev := range res.Events {
			e.cfg.Observer.Transition(res.Order.Merchant, ev.From, ev.To, ev.Type)
		}
		if !res.Applied {
			e.cfg.Observer.Refused(cmd.Verb, res.Code)
		}
	}
}

func validCommand(c Command) error {
	switch {
	case c.ID == "":
		return errors.New("command without id")
	case !ValidOrderID(c.OrderID):
		return fmt.Errorf("order id %q is not 1-64 of [0-9A-Za-z_-]", c.OrderID)
	}
	ok := map[Verb]bool{
		VerbCreate: c.Create != nil, VerbAuthorize: c.Authorize != nil, VerbPrepaid: c.Prepaid != nil,
		VerbSigned: c.Signed != nil, VerbNotify: c.Notify != nil, VerbRefund: c.Refund != nil, VerbSendRefund: c.Send != nil,
		VerbRefunded: c.Refunded != nil, VerbClose: true, VerbFail: c.Fail != nil, VerbFlag: c.Flag != nil,
		VerbReplay: true, VerbResolve: c.Resolve != nil,
	}
	has, known := ok[c.Verb]
	if !known {
		return fmt.Errorf("unknown verb %q", c.Verb)
	}
	if !has {
		return fmt.Errorf("%s command without its payload", c.Verb)
	}
	switch {
	case c.Verb == VerbFlag && !validFlag(c.Flag.Reason):
		return fmt.Errorf("flag %q is not 1-%d of [0-9a-z_:.-]", c.Flag.Reason, flagNameMaxLen)
	case c.Verb == VerbResolve && !strings.HasPrefix(c.Actor, "admin:"):
		return errors.New("a flag is resolved by a person: the actor must be admin:<who>")
	case c.Verb == VerbResolve && strings.TrimSpace(c.Reason) == "":
		return errors.New("a resolution needs a reason: it is written to the history")
	}
	return nil
}

func (e *Engine) applyOnce(ctx context.Context, cmd Command, seenFirst bool) (Result, error) {
	tx, done, err := e.store.beginWrite(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	defer tx.Rollback()
	res, err := e.applyIn(e.store.stmtContext(ctx), tx, cmd, seenFirst)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// applyIn decides and writes one command inside tx, which the caller commits.
//
// A command id is applied at most once. Its record is written last, and a
// command whose id is recorded already fails there with errCommandSeen: the
// caller rolls back what it wrote and applies it again with seenFirst, which
// looks for the id before anything else and answers duplicate_command. Looking
// first every time cost a query per command for the few that are duplicates.
func (e *Engine) applyIn(ctx context.Context, tx *sqlx.Tx, cmd Command, seenFirst bool) (Result, error) {
	s := e.store
	if seenFirst {
		switch seen, ok, err := s.commandSeen(ctx, tx, cmd.ID); {
		case err != nil:
			return Result{}, err
		case ok:
			o, _ := s.orderIn(ctx, tx, cmd.OrderID)
			return Result{Code: CodeDuplicateCommand, Reason: fmt.Sprintf("command %s was seen before (applied=%v %s)", cmd.ID, seen.Applied, seen.Code), Order: o.Order}, nil
		}
	}
	f, err := e.loadFacts(ctx, tx, cmd)
	if err != nil {
		return Result{}, err
	}
	cur := f.order
	now := e.cfg.Now().UTC()
	ch, ref, err := decide(f, cmd, now)
	if err != nil {
		return Result{}, err
	}
	res := Result{Applied: ref == nil}
	if ref != nil {
		res.Code, res.Reason = ref.code, ref.reason
		if cur != nil {
			res.Order = cur.Order
		}
		if ref.flag != "" && cur != nil && !cur.Flags.Has(ref.flag) {
			// The refusal raises its flag beside any other the order has.
			ch = &change{order: cur.Order, refundDue: cur.RefundDueAt}
			ch.order.raise(ref.flag)
			ch.events = []Event{{Type: EventFlagged, From: cur.State, To: cur.State, Reason: flagReason(ref.flag, ref.reason)}}
		} else {
			ch = nil
		}
	}
	if ch != nil {
		e.schedule(cur, ch, now)
		if res.Events, err = s.writeChange(ctx, tx, cur, ch, cmd, now); err != nil {
			return Result{}, err
		}
		res.Order = ch.order
	}
	if err := s.recordCommand(ctx, tx, cmd, res, now); err != nil {
		return Result{}, err
	}
	return res, nil
}

// ApplyBatch applies commands in ONE transaction, each inside its own
// savepoint: group commit, so that a burst of commands pays for one commit
// instead of one each. A command whose savepoint fails is rolled back alone
// and applied again on its own by Apply; the results are Apply's, in order.
// The same order's commands may be in one batch: they are applied in order.
func (e *Engine) ApplyBatch(ctx context.Context, cmds []Command) ([]Result, []error) {
	results, errs := make([]Result, len(cmds)), make([]error, len(cmds))
	alone := make([]bool, len(cmds)) // to apply on its own after the batch
	setAside := map[OrderID]bool{}   // orders with a command alone: their later ones wait too, in order
	committed := false
	if tx, done, err := e.store.beginWrite(ctx); err == nil {
		ctx := e.store.stmtContext(ctx) // the transaction's statements (applyIn's too)
		broken := false
		for i, cmd := range cmds {
			if broken || setAside[cmd.OrderID] || validCommand(cmd) != nil {
				alone[i] = true // (an invalid one: Apply answers it, refused, without writing)
				setAside[cmd.OrderID] = true
				continue
			}
			if err := e.store.savepoint(ctx, tx); err != nil {
				alone[i], broken = true, true
				continue
			}
			res, err := e.applyIn(ctx, tx, cmd, false)
			if errors.Is(err, errCommandSeen) {
				// A duplicate: undo what it wrote and answer it as one, here
				// rather than in a transaction of its own.
				if err = e.store.rollbackToSavepoint(ctx, tx); err == nil {
					res, err = e.applyIn(ctx, tx, cmd, true)
				}
			}
			if err != nil {
				alone[i] = true
				setAside[cmd.OrderID] = true
				if err := e.store.rollbackToSavepoint(ctx, tx); err != nil {
					broken = true
				}
			}
			if err := e.store.releaseSavepoint(ctx, tx); err != nil {
				broken = true
			}
			results[i] = res
		}
		if broken {
			_ = tx.Rollback()
		} else if committed = tx.Commit() == nil; !committed {
			_ = tx.Rollback()
		}
		done()
	}
	for i, cmd := range cmds {
		if !committed || alone[i] {
			results[i], errs[i] = e.Apply(ctx, cmd)
			continue
		}
		e.committed(cmd, results[i])
	}
	return results, errs
}
