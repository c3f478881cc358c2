-- Refunds are queued: a shop may ask several refunds of one order at once,
-- and the engine sends them to WeChat one at a time, a gap apart (WeChat
-- wants a minute between two refunds of one order), in the order asked.
--
-- refunds.seq is a refund's place in its order's queue (1, 2 …; WeChat takes
-- at most 50 refunds of an order). sent_at is when the engine handed the
-- refund to the refund worker, settled_at when WeChat's final word came;
-- error_code and error_message are WeChat's, for a refund it refused or
-- closed. orders.refund_due_at is when the engine sends the order's next
-- queued refund: NULL while none is queued or one is at WeChat. The partial
-- index holds only the orders with a refund due some day.
--
-- Refunds of before: each had been sent when asked; the settled ones settled
-- at their last update.

-- +goose Up
ALTER TABLE refunds ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN sent_at TIMESTAMPTZ;
ALTER TABLE refunds ADD COLUMN settled_at TIMESTAMPTZ;
ALTER TABLE refunds ADD COLUMN error_code TEXT NOT NULL DEFAULT '';
ALTER TABLE refunds ADD COLUMN error_message TEXT NOT NULL DEFAULT '';
UPDATE refunds SET seq = (SELECT COUNT(*) FROM refunds r2 WHERE r2.order_id = refunds.order_id
    AND (r2.created_at < refunds.created_at OR r2.created_at = refunds.created_at AND r2.out_refund_no <= refunds.out_refund_no));
UPDATE refunds SET sent_at = created_at;
UPDATE refunds SET settled_at = updated_at WHERE state <> 'pending';
CREATE UNIQUE INDEX refunds_order_seq ON refunds (order_id, seq);
DROP INDEX refunds_order;
ALTER TABLE orders ADD COLUMN refund_due_at TIMESTAMPTZ;
CREATE INDEX orders_refund_due ON orders (refund_due_at) WHERE refund_due_at IS NOT NULL;

-- +goose Down
DROP INDEX orders_refund_due;
ALTER TABLE orders DROP COLUMN refund_due_at;
CREATE INDEX refunds_order ON refunds (order_id);
DROP INDEX refunds_order_seq;
ALTER TABLE refunds DROP COLUMN error_message;
ALTER TABLE refunds DROP COLUMN error_code;
ALTER TABLE refunds DROP COLUMN settled_at;
ALTER TABLE refunds DROP COLUMN sent_at;
ALTER TABLE refunds DROP COLUMN seq;
