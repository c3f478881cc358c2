-- An order keeps a set of flags (a JSON array of names, '' when none): a new
-- flag never erases another, and an alert (engine/flags.go) is cleared by a
-- person only. flag stays, holding the set's primary flag, for one-line views
-- and the stuck list's "flag <> ''".
--
-- The reconciler asks WeChat about each quiet order on its own schedule, the
-- delay doubling after each ask (reconcile_attempts), instead of every quiet
-- order every round: reconcile_at is when it is next due, NULL when the order
-- waits for nothing WeChat could tell. The partial index holds only the
-- orders due some day, oldest due first. Orders already waiting are due at
-- once.

-- +goose Up
ALTER TABLE orders ADD COLUMN flags TEXT NOT NULL DEFAULT '';
UPDATE orders SET flags = '["' || flag || '"]' WHERE flag <> '';
ALTER TABLE orders ADD COLUMN reconcile_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN reconcile_at TIMESTAMPTZ;
UPDATE orders SET reconcile_at = updated_at WHERE state IN ('signed', 'refunding');
CREATE INDEX orders_reconcile_due ON orders (reconcile_at) WHERE reconcile_at IS NOT NULL;

-- +goose Down
DROP INDEX orders_reconcile_due;
ALTER TABLE orders DROP COLUMN reconcile_at;
ALTER TABLE orders DROP COLUMN reconcile_attempts;
ALTER TABLE orders DROP COLUMN flags;
