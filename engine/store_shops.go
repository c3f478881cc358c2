package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// The store's shops and their API keys (migration 00005).

// AddShop stores a new shop with the merchants it may act for;
// [ErrShopExists] when the name is taken.
func (s *Store) AddShop(ctx context.Context, shop Shop) error {
	if !ValidShopName(shop.Name) {
		return fmt.Errorf("engine: shop name %q: want 1-32 of [a-z0-9_-]", shop.Name)
	}
	if len(shop.Merchants) == 0 {
		return fmt.Errorf("engine: shop %s: at least one merchant is needed", shop.Name)
	}
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("engine: add shop: %w", err)
	}
	defer done()
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO shops (name, created_at) VALUES (?, ?)`), shop.Name, shop.CreatedAt.UTC()); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: %s", ErrShopExists, shop.Name)
		}
		return fmt.Errorf("engine: add shop: %w", storeError(err))
	}
	for _, m := range shop.Merchants {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO shop_merchants (shop, merchant) VALUES (?, ?)`), shop.Name, m); err != nil {
			return fmt.Errorf("engine: add shop %s, merchant %s: %w", shop.Name, m, storeError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("engine: add shop: %w", storeError(err))
	}
	return nil
}

// Shop returns one shop with its merchants; [ErrNotFound] when there is none.
func (s *Store) Shop(ctx context.Context, name string) (Shop, error) {
	var shop Shop
	err := s.db.GetContext(ctx, &shop, s.db.Rebind(`SELECT name, created_at FROM shops WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return shop, fmt.Errorf("engine: shop %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return shop, fmt.Errorf("engine: shop %s: %w", name, err)
	}
	shop.CreatedAt = shop.CreatedAt.UTC()
	if err := s.db.SelectContext(ctx, &shop.Merchants, s.db.Rebind(`SELECT merchant FROM shop_merchants WHERE shop = ? ORDER BY merchant`), name); err != nil {
		return shop, fmt.Errorf("engine: shop %s: %w", name, err)
	}
	return shop, nil
}

// Shops lists every shop with its merchants, by name.
func (s *Store) Shops(ctx context.Context) ([]Shop, error) {
	var names []string
	if err := s.db.SelectContext(ctx, &names, `SELECT name FROM shops ORDER BY name`); err != nil {
		return nil, fmt.Errorf("engine: shops: %w", err)
	}
	out := make([]Shop, 0, len(names))
	for _, n := range names {
		shop, err := s.Shop(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, shop)
	}
	return out, nil
}

// AddShopKey stores a key of an existing shop (made by [NewShopKey]).
func (s *Store) AddShopKey(ctx context.Context, k ShopKey) error {
	if _, err := s.Shop(ctx, k.Shop); err != nil {
		return err
	}
	err := s.execWrite(ctx, s.db.Rebind(`INSERT INTO shop_keys (id, shop, hash, created_at) VALUES (?, ?, ?, ?)`),
		k.ID, k.Shop, k.Hash, k.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("engine: add key of shop %s: %w", k.Shop, storeError(err))
	}
	return nil
}

// ShopKeys lists a shop's keys, live and revoked, oldest first.
func (s *Store) ShopKeys(ctx context.Context, shop string) ([]ShopKey, error) {
	var out []ShopKey
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, shop, hash, created_at, revoked_at FROM shop_keys
		WHERE shop = ? ORDER BY created_at, id`), shop)
	if err != nil {
		return nil, fmt.Errorf("engine: keys of shop %s: %w", shop, err)
	}
	for i := range out {
		fixKey(&out[i])
	}
	return out, nil
}

// RevokeShopKeys revokes the shop's live key keyID, or every live key of
// the shop when keyID is empty, and returns how many it revoked.
func (s *Store) RevokeShopKeys(ctx context.Context, shop, keyID string, at time.Time) (int, error) {
	q, args := `UPDATE shop_keys SET revoked_at = ? WHERE shop = ? AND revoked_at IS NULL`, []any{at.UTC(), shop}
	if keyID != "" {
		q, args = q+` AND id = ?`, append(args, keyID)
	}
	done, err := s.writerTurn(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	r, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return 0, fmt.Errorf("engine: revoke keys of shop %s: %w", shop, storeError(err))
	}
	n, err := r.RowsAffected()
	return int(n), err
}

// Authenticate returns the shop a key belongs to, checking it against its
// stored hash under secret in constant time; [ErrBadKey] for a malformed,
// unknown or revoked key.
func (s *Store) Authenticate(ctx context.Context, secret []byte, key string) (Shop, error) {
	id, ok := ShopKeyID(key)
	if !ok {
		return Shop{}, ErrBadKey
	}
	var k ShopKey
	err := s.db.GetContext(ctx, &k, s.db.Rebind(`SELECT id, shop, hash, created_at, revoked_at FROM shop_keys WHERE id = ?`), id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Shop{}, ErrBadKey
	case err != nil:
		return Shop{}, fmt.Errorf("engine: authenticate: %w", err)
	case !keyMatches(secret, key, k) || !k.Live():
		return Shop{}, ErrBadKey
	}
	shop, err := s.Shop(ctx, k.Shop)
	if errors.Is(err, ErrNotFound) {
		return Shop{}, ErrBadKey
	}
	return shop, err
}

func fixKey(k *ShopKey) {
	k.CreatedAt = k.CreatedAt.UTC()
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		k.RevokedAt = &t
	}
}

// isUniqueViolation tells a row that exists already, on either database.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey || se.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUniqueViolation
}
