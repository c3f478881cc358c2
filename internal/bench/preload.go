package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// preload fills the store with n paid orders and one event each, in
// batches of 10,000 rows per transaction.
func preload(ctx context.Context, dsn string, n int) error {
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	db := store.DB()
	now := time.Now().UTC()
	run := strconv.FormatInt(now.Unix()%10_000_000, 10) // ids of this preload, apart from an earlier one's
	for done := 0; done < n; {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		ins, err := tx.PreparexContext(ctx, db.Rebind(`INSERT INTO orders (id, merchant, out_trade_no, description, amount_fen, pay_api, client,
			openid, state, transaction_id, paid_fen, expires_at, created_at, updated_at, version)
			VALUES (?, 'default', ?, 'preload', 100, 'v2', 'jsapi', ?, 'notified', ?, 100, ?, ?, ?, 1)`))
		if err != nil {
			tx.Rollback()
			return err
		}
		ev, err := tx.PreparexContext(ctx, db.Rebind(`INSERT INTO order_events (id, order_id, seq, type, from_state, to_state, at,
			command_id, actor, reason, trace_id) VALUES (?, ?, 1, 'notified', 'signed', 'notified', ?, ?, 'preload', 'paid, source query', '')`))
		if err != nil {
			tx.Rollback()
			return err
		}
		for end := min(done+10000, n); done < end; done++ {
			id := fmt.Sprintf("o_pre%s_%09d", run, done)
			if _, err := ins.ExecContext(ctx, id, fmt.Sprintf("PRE%s%09d", run, done), "oPRELOAD", fmt.Sprintf("42%s%09d", run, done), now, now, now); err != nil {
				tx.Rollback()
				return err
			}
			if _, err := ev.ExecContext(ctx, "evt_"+id, id, now, "preload:"+id); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
