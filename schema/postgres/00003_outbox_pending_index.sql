-- The relay asks for the unsent rows in order. With an index on (sent_at, seq)
-- PostgreSQL preferred walking the primary key past every row already sent, so
-- each relay pass grew with the outbox's history (27 ms at 27,000 rows). A
-- partial index holds only the unsent rows: a pass costs what is pending.

-- +goose Up
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_at IS NULL;
DROP INDEX outbox_unsent;

-- +goose Down
CREATE INDEX outbox_unsent ON outbox (sent_at, seq);
DROP INDEX outbox_pending;
