-- +goose Up
-- The hourly prune of ended deliveries reads them oldest first by this index,
-- instead of scanning the whole table (every delivery kept) each hour.
CREATE INDEX IF NOT EXISTS webhook_deliveries_done ON webhook_deliveries (done_at) WHERE state IN ('delivered', 'cancelled');

-- +goose Down
DROP INDEX IF EXISTS webhook_deliveries_done;
