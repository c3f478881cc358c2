-- +goose Up
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    merchant       TEXT NOT NULL,
    out_trade_no   TEXT NOT NULL,
    description    TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL CHECK (amount_fen > 0),
    pay_api        TEXT NOT NULL,
    client         TEXT NOT NULL,
    openid         TEXT NOT NULL DEFAULT '',
    oauth_code     TEXT NOT NULL DEFAULT '',
    login_code     TEXT NOT NULL DEFAULT '',
    client_ip      TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    prepay_id      TEXT NOT NULL DEFAULT '',
    pay_params     TEXT NOT NULL DEFAULT '',
    transaction_id TEXT NOT NULL DEFAULT '',
    paid_fen       BIGINT NOT NULL DEFAULT 0,
    refunded_fen   BIGINT NOT NULL DEFAULT 0 CHECK (refunded_fen <= paid_fen),
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    version        BIGINT NOT NULL,
    flag           TEXT NOT NULL DEFAULT '',
    fail_code      TEXT NOT NULL DEFAULT '',
    fail_reason    TEXT NOT NULL DEFAULT '',
    request_hash   TEXT NOT NULL DEFAULT '',
    close_requested BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (merchant, out_trade_no)
);
CREATE INDEX orders_state_expires ON orders (state, expires_at);
CREATE INDEX orders_state_updated ON orders (state, updated_at);

CREATE TABLE order_events (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    command_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    trace_id   TEXT NOT NULL,
    UNIQUE (order_id, seq)
);

CREATE TABLE commands (
    id       TEXT PRIMARY KEY,
    verb     TEXT NOT NULL,
    order_id TEXT NOT NULL,
    applied  BOOLEAN NOT NULL,
    code     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX commands_order ON commands (order_id, at);

CREATE TABLE outbox (
    seq        BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON outbox (sent_at, seq);

CREATE TABLE refunds (
    out_refund_no TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    amount_fen    BIGINT NOT NULL CHECK (amount_fen > 0),
    reason        TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    refund_id     TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id);

-- +goose Down
DROP TABLE refunds;
DROP TABLE outbox;
DROP TABLE commands;
DROP TABLE order_events;
DROP TABLE orders;
