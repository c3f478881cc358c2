package engine

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Result codes of a command that was not applied (Result.Code).
const (
	CodeDuplicateCommand = "duplicate_command"  // this command id was seen before
	CodeExists           = "exists"             // the same create again: the existing order
	CodeConflict         = "conflict"           // same id / out_trade_no / out_refund_no, other content
	CodeInvalidState     = "invalid_state"      // the lifecycle does not allow it now
	CodeDuplicate        = "duplicate"          // already done (a repeated notification, refund result…)
	CodeAmountMismatch   = "amount_mismatch"    // WeChat's amount differs from the order's; flagged
	CodePaidAfterClose   = "paid_after_close"   // a payment for a closed order; flagged for a refund
	CodeOverRefund       = "over_refund"        // more than remains of the payment
	CodeRefundInProgress = "refund_in_progress" // one refund at a time
	CodeCloseRequested   = "close_requested"    // closing is already under way
	CodeUnknownOrder     = "unknown_order"
	CodeNothingToReplay  = "nothing_to_replay" // the order rests: no step is pending
	CodeStale            = "stale"             // about a state the order has left
	CodeInvalid          = "invalid"           // malformed command
)

// Result is what became of a command. Applied is false for a refusal, which
// is recorded with its Code and Reason and changes nothing (but a flag).
type Result struct {
	Applied bool    `json:"applied"`
	Code    string  `json:"code,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Order   Order   `json:"order"`
	Events  []Event `json:"events,omitempty"`
}

// change is what a command does to an order, decided before anything is written.
type change struct {
	order     Order   // the order after the command
	insert    bool    // a new order
	events    []Event // facts, in order (IDs and seqs filled by write)
	newRefund *Refund
	setRefund *Refund // an existing refund's new state
	closeReq  bool    // remember that closing was asked of the close worker
	reqHash   string
}

// refusal is a command that does not fit; flag, when set, is still written.
type refusal struct {
	code, reason, flag string
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
	var res Result
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		res, err = e.applyOnce(ctx, cmd)
		if !isBusy(err) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	if err != nil {
		return res, storeError(err)
	}
	e.committed(cmd, res)
	return res, nil
}

// committed wakes the relay for new events and tells the observer, once a
// command's transaction has committed.
func (e *Engine) committed(cmd Command, res Result) {
	if len(res.Events) > 0 {
		e.relay.Wake()
	}
	if e.cfg.Observer != nil {
		for _, ev := range res.Events {
			e.cfg.Observer.Transition(ev.From, ev.To, ev.Type)
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
		VerbSigned: c.Signed != nil, VerbNotify: c.Notify != nil, VerbRefund: c.Refund != nil,
		VerbRefunded: c.Refunded != nil, VerbClose: true, VerbFail: c.Fail != nil, VerbFlag: c.Flag != nil,
		VerbReplay: true,
	}
	has, known := ok[c.Verb]
	if !known {
		return fmt.Errorf("unknown verb %q", c.Verb)
	}
	if !has {
		return fmt.Errorf("%s command without its payload", c.Verb)
	}
	return nil
}

func (e *Engine) applyOnce(ctx context.Context, cmd Command) (Result, error) {
	tx, done, err := e.store.beginWrite(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	defer tx.Rollback()
	res, err := e.applyIn(ctx, tx, cmd)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// applyIn decides and writes one command inside tx, which the caller commits.
func (e *Engine) applyIn(ctx context.Context, tx *sqlx.Tx, cmd Command) (Result, error) {
	s := e.store
	var seen struct {
		Applied bool   `db:"applied"`
		Code    string `db:"code"`
		Reason  string `db:"reason"`
	}
	switch err := tx.GetContext(ctx, &seen, s.db.Rebind("SELECT applied, code, reason FROM commands WHERE id = ?"), cmd.ID); {
	case err == nil:
		o, _ := s.getOrderRow(ctx, tx, "id = ?", cmd.OrderID)
		return Result{Code: CodeDuplicateCommand, Reason: fmt.Sprintf("command %s was seen before (applied=%v %s)", cmd.ID, seen.Applied, seen.Code), Order: o.Order}, nil
	case !isNoRows(err):
		return Result{}, err
	}
	lock := ""
	if s.dialect == "pgx" {
		lock = " FOR UPDATE"
	}
	row, err := s.getOrderRow(ctx, tx, "id = ?"+lock, cmd.OrderID)
	var cur *orderRow
	switch {
	case err == nil:
		cur = &row
	case !errors.Is(err, ErrNotFound):
		return Result{}, err
	}
	now := e.cfg.Now().UTC()
	ch, ref, err := e.decide(ctx, tx, cur, cmd, now)
	if err != nil {
		return Result{}, err
	}
	res := Result{Applied: ref == nil}
	if ref != nil {
		res.Code, res.Reason = ref.code, ref.reason
		if cur != nil {
			res.Order = cur.Order
		}
		if ref.flag != "" && cur != nil && cur.Flag != ref.flag {
			ch = &change{order: cur.Order}
			ch.order.Flag = ref.flag
			ch.events = []Event{{Type: EventFlagged, From: cur.State, To: cur.State, Reason: ref.reason}}
		} else {
			ch = nil
		}
	}
	if ch != nil {
		if res.Events, err = e.write(ctx, tx, cur, ch, cmd, now); err != nil {
			return Result{}, err
		}
		res.Order = ch.order
	}
	code, reason := res.Code, res.Reason
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO commands (id, verb, order_id, applied, code, reason, actor, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), cmd.ID, cmd.Verb, cmd.OrderID, res.Applied, code, reason, cmd.Actor, now); err != nil {
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
		broken := false
		for i, cmd := range cmds {
			if broken || setAside[cmd.OrderID] || validCommand(cmd) != nil {
				alone[i] = true // (an invalid one: Apply answers it, refused, without writing)
				setAside[cmd.OrderID] = true
				continue
			}
			if _, err := tx.ExecContext(ctx, "SAVEPOINT cmd"); err != nil {
				alone[i], broken = true, true
				continue
			}
			res, err := e.applyIn(ctx, tx, cmd)
			if err != nil {
				alone[i] = true
				setAside[cmd.OrderID] = true
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT cmd"); err != nil {
					broken = true
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT cmd"); err != nil {
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

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// write stores a change: the order (insert, or update guarded by its
// version), the refund rows, and one event row plus one outbox row per event.
func (e *Engine) write(ctx context.Context, tx *sqlx.Tx, cur *orderRow, ch *change, cmd Command, now time.Time) ([]Event, error) {
	s := e.store
	o := &ch.order
	prevVersion := o.Version
	o.Version += int64(len(ch.events))
	o.UpdatedAt = now
	if ch.newRefund != nil {
		r := ch.newRefund
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO refunds (out_refund_no, order_id, amount_fen, reason, state, refund_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), r.OutRefundNo, r.OrderID, r.AmountFen, r.Reason, r.State, r.RefundID, now, now); err != nil {
			return nil, err
		}
	}
	if r := ch.setRefund; r != nil {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE refunds SET state = ?, refund_id = ?, updated_at = ? WHERE out_refund_no = ?`),
			r.State, r.RefundID, now, r.OutRefundNo); err != nil {
			return nil, err
		}
	}
	if ch.insert {
		o.CreatedAt = now
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO orders (`+orderColumns+`, request_hash, close_requested)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			o.ID, o.Merchant, o.OutTradeNo, o.Description, o.AmountFen, o.PayAPI, o.Client, o.OpenID, o.OAuthCode,
			o.LoginCode, o.ClientIP, o.State, o.PrepayID, o.PayParams, o.TransactionID, o.PaidFen, o.RefundedFen, o.ExpiresAt.UTC(),
			o.CreatedAt, o.UpdatedAt, o.Version, o.Flag, o.FailCode, o.FailReason, ch.reqHash, false); err != nil {
			return nil, err
		}
	} else {
		closeReq := cur.CloseRequested || ch.closeReq
		r, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE orders SET openid = ?, oauth_code = ?, login_code = ?, state = ?,
			prepay_id = ?, pay_params = ?, transaction_id = ?, paid_fen = ?, refunded_fen = ?, updated_at = ?, version = ?,
			flag = ?, fail_code = ?, fail_reason = ?, close_requested = ? WHERE id = ? AND version = ?`),
			o.OpenID, o.OAuthCode, o.LoginCode, o.State, o.PrepayID, o.PayParams, o.TransactionID, o.PaidFen, o.RefundedFen,
			o.UpdatedAt, o.Version, o.Flag, o.FailCode, o.FailReason, closeReq, o.ID, prevVersion)
		if err != nil {
			return nil, err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return nil, errVersionConflict
		}
	}
	events := make([]Event, len(ch.events))
	for i, ev := range ch.events {
		ev.ID = NewID("evt")
		ev.OrderID = o.ID
		ev.Seq = prevVersion + int64(i) + 1
		ev.At = now
		ev.CommandID, ev.Actor, ev.TraceID = cmd.ID, cmd.Actor, cmd.TraceID
		if ev.Reason == "" {
			ev.Reason = cmd.Reason
		}
		ev.Order = *o
		payload, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO order_events (id, order_id, seq, type, from_state, to_state, at,
			command_id, actor, reason, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			ev.ID, ev.OrderID, ev.Seq, ev.Type, ev.From, ev.To, now, ev.CommandID, ev.Actor, ev.Reason, ev.TraceID); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO outbox (event_id, subject, payload, created_at) VALUES (?, ?, ?, ?)`),
			ev.ID, ev.Subject(), payload, now); err != nil {
			return nil, err
		}
		events[i] = ev
	}
	return events, nil
}
