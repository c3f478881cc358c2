-- An order belongs to one merchant and one app: the Official Account or
-- mini-program its payer pays in. The payer's openid is under that app (an
-- openid belongs to exactly one app), and the front-end paySign is made
-- over its appid. Empty for orders of before (and for orders whose creator
-- named no app): the workers then take the merchant's app for the order's
-- front end (jsapi: its Official Account, miniprogram: its mini-program).

-- +goose Up
ALTER TABLE orders ADD COLUMN appid TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE orders DROP COLUMN appid;
