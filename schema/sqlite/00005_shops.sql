-- Shops: who may call the shop API, for which merchants, with which keys.
-- A key is stored only as its HMAC-SHA256 under the server secret; its id is
-- the public part of the key, so a key can be listed and revoked by id.
-- Orders record the shop that created them: a shop sees only its own.

-- +goose Up
CREATE TABLE shops (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE shop_merchants (
    shop     TEXT NOT NULL REFERENCES shops (name),
    merchant TEXT NOT NULL,
    PRIMARY KEY (shop, merchant)
);

CREATE TABLE shop_keys (
    id         TEXT PRIMARY KEY,
    shop       TEXT NOT NULL REFERENCES shops (name),
    hash       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX shop_keys_shop ON shop_keys (shop);

ALTER TABLE orders ADD COLUMN shop TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE orders DROP COLUMN shop;
DROP TABLE shop_keys;
DROP TABLE shop_merchants;
DROP TABLE shops;
