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

// The SQL of Apply: what it reads in a command's transaction (the facts) and
// what it writes there.

// seenCommand is what became of a command id applied before.
type seenCommand struct {
	Applied bool        `db:"applied"`
	Code    RefusalCode `db:"code"`
	Reason  string      `db:"reason"`
}

// commandSeen reports whether the command id was applied (or refused) before.
func (s *Store) commandSeen(ctx context.Context, tx *sqlx.Tx, id string) (seenCommand, bool, error) {
	var seen seenCommand
	err := tx.GetContext(ctx, &seen, s.db.Rebind("SELECT applied, code, reason FROM commands WHERE id = ?"), id)
	if errors.Is(err, sql.ErrNoRows) {
		return seen, false, nil
	}
	return seen, err == nil, err
}

// orderIn reads an order inside tx.
func (s *Store) orderIn(ctx context.Context, tx *sqlx.Tx, id OrderID) (orderRow, error) {
	return s.getOrderRow(ctx, tx, "id = ?", id)
}

// lockOrder reads an order inside tx and, on PostgreSQL, locks its row until
// the transaction ends (SQLite's write transaction holds the whole database).
func (s *Store) lockOrder(ctx context.Context, tx *sqlx.Tx, id OrderID) (orderRow, error) {
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	return s.getOrderRow(ctx, tx, "id = ?"+lock, id)
}

// tradeOwner is the order that holds a merchant's out_trade_no, "" when none does.
func (s *Store) tradeOwner(ctx context.Context, tx *sqlx.Tx, merchant, outTradeNo string) (OrderID, error) {
	o, err := s.getOrderRow(ctx, tx, "merchant = ? AND out_trade_no = ?", merchant, outTradeNo)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	return o.ID, nil
}

// refundIn reads a refund by its out_refund_no inside tx; nil when there is none.
func (s *Store) refundIn(ctx context.Context, tx *sqlx.Tx, outRefundNo string) (*Refund, error) {
	r, err := s.refundByOutRefundNo(ctx, tx, outRefundNo)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &r, nil
}

// pendingRefund is the refund an order in Refunding waits for.
func (s *Store) pendingRefund(ctx context.Context, q sqlx.QueryerContext, id OrderID) (Refund, error) {
	var r Refund
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+refundColumns+` FROM refunds WHERE order_id = ? AND state = ?`), id, RefundPending)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("engine: order %s is refunding without a pending refund: %w", id, ErrNotFound)
	}
	fixRefund(&r)
	return r, err
}

// errCommandSeen is recordCommand's answer for a command id recorded before:
// the transaction must not commit (applyIn).
var errCommandSeen = errors.New("engine: command id seen before")

// recordCommand remembers what became of a command, applied or refused: the
// engine applies a command id at most once. The id recorded already, it
// writes nothing and returns errCommandSeen; on PostgreSQL it waits for
// another transaction writing the same id, and sees its row once it commits.
func (s *Store) recordCommand(ctx context.Context, tx *sqlx.Tx, cmd Command, res Result, now time.Time) error {
	r, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO commands (id, verb, order_id, applied, code, reason, actor, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`), cmd.ID, cmd.Verb, cmd.OrderID, res.Applied, res.Code, res.Reason, cmd.Actor, now)
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return errors.Join(errCommandSeen, err)
	}
	return nil
}

// The savepoint each command of a group commit runs in (ApplyBatch).
func (s *Store) savepoint(ctx context.Context, tx *sqlx.Tx) error {
	_, err := tx.ExecContext(ctx, "SAVEPOINT cmd")
	return err
}

func (s *Store) rollbackToSavepoint(ctx context.Context, tx *sqlx.Tx) error {
	_, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT cmd")
	return err
}

func (s *Store) releaseSavepoint(ctx context.Context, tx *sqlx.Tx) error {
	_, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT cmd")
	return err
}

// writeChange stores a change: the order (insert, or update guarded by its
// version), the refund rows, and one event row plus one outbox row per event.
func (s *Store) writeChange(ctx context.Context, tx *sqlx.Tx, cur *orderRow, ch *change, cmd Command, now time.Time) ([]Event, error) {
	o := &ch.order
	prevVersion := o.Version
	o.Version += int64(len(ch.events))
	o.UpdatedAt = now
	if ch.newRefund != nil {
		r := ch.newRefund
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO refunds (`+refundColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), r.OutRefundNo, r.OrderID, r.AmountFen, r.Reason, r.State, r.RefundID,
			r.Seq, r.SentAt, r.SettledAt, r.ErrorCode, r.ErrorMessage, now, now); err != nil {
			return nil, err
		}
	}
	for _, r := range ch.setRefunds {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE refunds SET state = ?, refund_id = ?, sent_at = ?, settled_at = ?,
			error_code = ?, error_message = ?, updated_at = ? WHERE out_refund_no = ?`),
			r.State, r.RefundID, r.SentAt, r.SettledAt, r.ErrorCode, r.ErrorMessage, now, r.OutRefundNo); err != nil {
			return nil, err
		}
	}
	if ch.insert {
		o.CreatedAt = now
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO orders (`+orderColumns+`, request_hash, close_requested,
			reconcile_attempts, reconcile_at, refund_due_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			o.ID, o.Merchant, o.OutTradeNo, o.Description, o.AmountFen, o.PayAPI, o.Client, o.OpenID, o.OAuthCode,
			o.LoginCode, o.ClientIP, o.State, o.PrepayID, o.PayParams, o.TransactionID, o.PaidFen, o.RefundedFen, o.ExpiresAt.UTC(),
			o.CreatedAt, o.UpdatedAt, o.Version, o.Flags, o.Flag, o.FailCode, o.FailReason, o.Shop, o.AppID, ch.reqHash, false,
			ch.reconcileAttempts, ch.reconcileAt, ch.refundDue); err != nil {
			return nil, err
		}
	} else {
		closeReq := cur.CloseRequested || ch.closeReq
		r, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE orders SET openid = ?, oauth_code = ?, login_code = ?, state = ?,
			prepay_id = ?, pay_params = ?, transaction_id = ?, paid_fen = ?, refunded_fen = ?, updated_at = ?, version = ?,
			flags = ?, flag = ?, fail_code = ?, fail_reason = ?, close_requested = ?, reconcile_attempts = ?, reconcile_at = ?,
			refund_due_at = ? WHERE id = ? AND version = ?`),
			o.OpenID, o.OAuthCode, o.LoginCode, o.State, o.PrepayID, o.PayParams, o.TransactionID, o.PaidFen, o.RefundedFen,
			o.UpdatedAt, o.Version, o.Flags, o.Flag, o.FailCode, o.FailReason, closeReq, ch.reconcileAttempts, ch.reconcileAt,
			ch.refundDue, o.ID, prevVersion)
		if err != nil {
			return nil, err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return nil, errVersionConflict
		}
	}
	if !ch.paidAt.IsZero() {
		if err := s.keepPaidAt(ctx, tx, o.ID, ch.paidAt); err != nil {
			return nil, err
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
		if err := s.queueWebhooks(ctx, tx, ev, now); err != nil {
			return nil, err
		}
		events[i] = ev
	}
	return events, nil
}
