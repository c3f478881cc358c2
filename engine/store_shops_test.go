package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
)

func TestShopKeyFormat(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	key, rec := engine.NewShopKey(secret, "s1", time.Now())
	id, ok := engine.ShopKeyID(key)
	if !ok || id != rec.ID || !strings.HasPrefix(key, engine.ShopKeyPrefix+rec.ID+"_") {
		t.Fatalf("key %q: id %q %v, record %+v", key, id, ok, rec)
	}
	if strings.Contains(rec.Hash, key) || rec.Hash != engine.HashShopKey(secret, key) || rec.Hash == engine.HashShopKey([]byte("other"), key) {
		t.Fatalf("the hash %q is not the key's HMAC under the secret", rec.Hash)
	}
	for _, bad := range []string{"", "wxs_", "wxs__x", key[:len(key)-1], strings.ToUpper(key), "Bearer " + key, key + "_", "wxk" + key[3:]} {
		if _, ok := engine.ShopKeyID(bad); ok {
			t.Errorf("ShopKeyID(%q) accepted", bad)
		}
	}
}

func TestShopStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		secret := []byte("0123456789abcdef0123456789abcdef")
		now := time.Now().UTC().Truncate(time.Second)
		if err := store.AddShop(ctx, engine.Shop{Name: "alpha", Merchants: []string{"default", "m2"}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := store.AddShop(ctx, engine.Shop{Name: "alpha", Merchants: []string{"default"}, CreatedAt: now}); !errors.Is(err, engine.ErrShopExists) {
			t.Fatalf("the same shop twice: %v, want ErrShopExists", err)
		}
		for _, bad := range []engine.Shop{{Name: "Alpha", Merchants: []string{"m"}}, {Name: "beta"}, {Name: "", Merchants: []string{"m"}}} {
			if err := store.AddShop(ctx, bad); err == nil {
				t.Errorf("AddShop(%+v) accepted", bad)
			}
		}
		if err := store.AddShop(ctx, engine.Shop{Name: "beta", Merchants: []string{"default"}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		shop, err := store.Shop(ctx, "alpha")
		if err != nil || !shop.ActsFor("m2") || shop.ActsFor("m3") || len(shop.Merchants) != 2 {
			t.Fatalf("Shop: %+v %v", shop, err)
		}
		if _, err := store.Shop(ctx, "gamma"); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("unknown shop: %v", err)
		}
		if shops, err := store.Shops(ctx); err != nil || len(shops) != 2 || shops[0].Name != "alpha" || shops[1].Name != "beta" {
			t.Fatalf("Shops: %+v %v", shops, err)
		}

		k1, r1 := engine.NewShopKey(secret, "alpha", now)
		k2, r2 := engine.NewShopKey(secret, "alpha", now.Add(time.Second))
		kb, rb := engine.NewShopKey(secret, "beta", now)
		for _, r := range []engine.ShopKey{r1, r2, rb} {
			if err := store.AddShopKey(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, r := engine.NewShopKey(secret, "gamma", now); !errors.Is(store.AddShopKey(ctx, r), engine.ErrNotFound) {
			t.Error("a key of a shop that does not exist was stored")
		}
		forged := k1[:len(k1)-1] + map[bool]string{true: "1", false: "0"}[k1[len(k1)-1] == '0']
		auth := []struct {
			name, key, shop string
		}{
			{"first key", k1, "alpha"},
			{"second key", k2, "alpha"},
			{"another shop's key", kb, "beta"},
			{"forged secret", forged, ""},
			{"malformed", "wxs_nope", ""},
			{"unknown id", func() string { k, _ := engine.NewShopKey(secret, "alpha", now); return k }(), ""},
		}
		for _, tc := range auth {
			got, err := store.Authenticate(ctx, secret, tc.key)
			if tc.shop == "" && !errors.Is(err, engine.ErrBadKey) || tc.shop != "" && (err != nil || got.Name != tc.shop) {
				t.Errorf("%s: %+v %v, want shop %q", tc.name, got, err, tc.shop)
			}
		}
		if _, err := store.Authenticate(ctx, []byte("another secret"), k1); !errors.Is(err, engine.ErrBadKey) {
			t.Errorf("a key checked under another server secret: %v", err)
		}

		// Revoking one key leaves the others live; revoking all ends them.
		if n, err := store.RevokeShopKeys(ctx, "alpha", r1.ID, now); err != nil || n != 1 {
			t.Fatalf("revoke one: %d %v", n, err)
		}
		if n, _ := store.RevokeShopKeys(ctx, "beta", r2.ID, now); n != 0 {
			t.Fatalf("revoked another shop's key by id: %d", n)
		}
		if _, err := store.Authenticate(ctx, secret, k1); !errors.Is(err, engine.ErrBadKey) {
			t.Errorf("revoked key: %v", err)
		}
		if got, err := store.Authenticate(ctx, secret, k2); err != nil || got.Name != "alpha" {
			t.Errorf("the other key after revoking one: %+v %v", got, err)
		}
		keys, err := store.ShopKeys(ctx, "alpha")
		if err != nil || len(keys) != 2 || keys[0].ID != r1.ID || keys[0].Live() || !keys[1].Live() {
			t.Fatalf("ShopKeys: %+v %v", keys, err)
		}
		if n, err := store.RevokeShopKeys(ctx, "alpha", "", now); err != nil || n != 1 {
			t.Fatalf("revoke all: %d %v", n, err)
		}
		if _, err := store.Authenticate(ctx, secret, k2); !errors.Is(err, engine.ErrBadKey) {
			t.Errorf("key after revoking all: %v", err)
		}
		if got, err := store.Authenticate(ctx, secret, kb); err != nil || got.Name != "beta" {
			t.Errorf("beta's key after revoking alpha's: %+v %v", got, err)
		}
	})
}

// TestOrderRecordsShop: the create command's shop is stored on the order,
// and a create that meets an out_trade_no held by another order names no
// order in its reason (it is shown to a shop that may not own it).
func TestOrderRecordsShop(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		e, _, _ := newEngine(t, store)
		ctx := context.Background()
		c := create("o_shop1", 100)
		c.Create.Shop, c.Create.OutTradeNo = "alpha", "SHARED-0001"
		if res, err := e.Apply(ctx, c); err != nil || !res.Applied || res.Order.Shop != "alpha" {
			t.Fatalf("create: %+v %v", res, err)
		}
		if o, err := store.Order(ctx, "o_shop1"); err != nil || o.Shop != "alpha" {
			t.Fatalf("stored: %+v %v", o, err)
		}
		other := create("o_shop2", 100)
		other.Create.Shop, other.Create.OutTradeNo = "beta", c.Create.OutTradeNo
		res, err := e.Apply(ctx, other)
		if err != nil || res.Code != engine.CodeConflict || strings.Contains(res.Reason, "o_shop1") {
			t.Fatalf("taken out_trade_no: %+v %v", res, err)
		}
		// The same order id asked by another shop with the same request is no repeat.
		same := create("o_shop1", 100)
		same.ID, same.Create.Shop, same.Create.OutTradeNo = "create:again", "beta", "SHARED-0001"
		if res, _ := e.Apply(ctx, same); res.Code != engine.CodeConflict {
			t.Fatalf("another shop's create of the same order id: %+v", res)
		}
	})
}
