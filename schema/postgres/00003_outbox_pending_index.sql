-- The relay asks for the unsent rows in order. With an index on (sent_at, seq)
-- PostgreSQL preferred walking the primary key past every row already sent, so
-- each relay pass grew with the outbox's history (27 ms at 27,000 rows). A
-- partial index holds only the unsent rows: a pass costs what is pending.
-- Each row sent leaves a dead entry in that index until a vacuum; the default
-- (a vacuum once a fifth of the table is dead) let them pile up by the
-- thousand under load, so the outbox is vacuumed every thousand dead rows.

-- +goose Up
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_at IS NULL;
DROP INDEX outbox_unsent;
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- +goose Down
ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
CREATE INDEX outbox_unsent ON outbox (sent_at, seq);
DROP INDEX outbox_pending;
