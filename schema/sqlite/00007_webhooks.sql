-- Webhooks: a shop's HTTP endpoints that receive every event of its
-- merchants' orders, signed, at least once, in order per order.
--
-- webhook_endpoints.secret is the endpoint's signing secret sealed with
-- AES-256-GCM under a key derived from the server secret (engine/webhooks.go):
-- the database alone gives no secret.
--
-- webhook_routes names the endpoints of each merchant (an endpoint has a
-- route for each merchant of its shop, made and removed with it): the
-- engine finds a merchant's endpoints by one index seek in every event's
-- transaction (a correlated subquery on shop_merchants there cost SQLite
-- several times an insert, with no endpoint at all).
--
-- webhook_deliveries holds one row per endpoint and event, written in the
-- transaction that wrote the event (unique: one delivery per endpoint and
-- event id); the event's JSON is the outbox row's payload. The deliverer
-- (workers/webhook) claims due rows with a lease (lease_owner, lease_until),
-- so several processes never send one row at once; next_at is when a pending
-- row is next due; a row waits while an earlier one (seq) of its order and
-- endpoint is pending, parked (next_at moved to when that one is next due)
-- so that claims do not read it, and woken when that one ends.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY,
    shop       TEXT NOT NULL REFERENCES shops (name),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP
);
CREATE INDEX webhook_endpoints_shop ON webhook_endpoints (shop);

CREATE TABLE webhook_routes (
    merchant    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    PRIMARY KEY (merchant, endpoint_id)
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    queued_at       TIMESTAMP NOT NULL,
    next_at         TIMESTAMP NOT NULL,
    lease_owner     TEXT,
    lease_until     TIMESTAMP,
    last_attempt_at TIMESTAMP,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    done_at         TIMESTAMP,
    parked          BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, order_id, seq);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (endpoint_id, id) WHERE state = 'failed';

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_routes;
DROP TABLE webhook_endpoints;
