-- The daily books: WeChat's bills as downloaded, their rows, and the
-- three-way reconciliation of each day and merchant (engine/books.go).
--
-- A bill is kept as it came (gzip of its bytes), once per distinct content
-- (its SHA-1 over the decompressed bytes): bills are immutable. bill_rows
-- are the rows of the latest bill of each day, in wxflow's words, for the
-- reconciliation and to find a trade in another day's bill. books holds one
-- result per day and merchant, replaced by each run (re-running a day gives
-- the same result when nothing changed). books_leases lets one process run
-- a day's books at a time.
--
-- orders.paid_at is WeChat's payment time (time_end / success_time), which
-- decides the day of a payment as the bill does; NULL for orders paid
-- before this migration (their notified event's time stands in).

-- +goose Up
CREATE TABLE bills (
    merchant      TEXT NOT NULL,
    day           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    sha1          TEXT NOT NULL,
    api           TEXT NOT NULL,
    data          BYTEA NOT NULL,
    size          BIGINT NOT NULL,
    row_count     INTEGER NOT NULL,
    final         BOOLEAN NOT NULL,
    downloaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (merchant, day, kind, sha1)
);

CREATE TABLE bill_rows (
    merchant       TEXT NOT NULL,
    day            TEXT NOT NULL,
    line           INTEGER NOT NULL,
    sha1           TEXT NOT NULL,
    refund         BOOLEAN NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    out_trade_no   TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    out_refund_no  TEXT NOT NULL,
    refund_id      TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    fee_milli_fen  BIGINT NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (merchant, day, line)
);
CREATE INDEX bill_rows_trade ON bill_rows (merchant, out_trade_no);
CREATE INDEX bill_rows_refund ON bill_rows (merchant, out_refund_no);

CREATE TABLE books (
    merchant      TEXT NOT NULL,
    day           TEXT NOT NULL,
    status        TEXT NOT NULL,
    final         BOOLEAN NOT NULL,
    bill_sha1     TEXT NOT NULL,
    matched       INTEGER NOT NULL,
    discrepancies INTEGER NOT NULL,
    result        TEXT NOT NULL,
    first_run_at  TIMESTAMPTZ NOT NULL,
    run_at        TIMESTAMPTZ NOT NULL,
    runs          INTEGER NOT NULL,
    PRIMARY KEY (merchant, day)
);

CREATE TABLE books_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);

ALTER TABLE orders ADD COLUMN paid_at TIMESTAMPTZ;
CREATE INDEX orders_paid_at ON orders (merchant, paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX refunds_created ON refunds (created_at);

-- +goose Down
DROP INDEX refunds_created;
DROP INDEX orders_paid_at;
ALTER TABLE orders DROP COLUMN paid_at;
DROP TABLE books_leases;
DROP TABLE books;
DROP TABLE bill_rows;
DROP TABLE bills;
