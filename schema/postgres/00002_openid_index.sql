-- +goose Up
CREATE INDEX orders_openid ON orders (openid, created_at);

-- +goose Down
DROP INDEX orders_openid;
