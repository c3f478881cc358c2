package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// DemoShop is the shop `wxflow dev` and the Procfile make for the demo.
const DemoShop = "demo"

// ShopKeyFile is where a shop's key is kept for local tools: <data>/shops/NAME.key.
func ShopKeyFile(dataDir, shop string) string {
	return filepath.Join(dataDir, "shops", shop+".key")
}

// IssueShopKey makes a new key for an existing shop, stores its hash and
// returns the key, which nothing keeps: it is shown once.
func IssueShopKey(ctx context.Context, store *engine.Store, secret []byte, shop string) (string, engine.ShopKey, error) {
	key, rec := engine.NewShopKey(secret, shop, time.Now())
	if err := store.AddShopKey(ctx, rec); err != nil {
		return "", rec, err
	}
	return key, rec, nil
}

// EnsureShop makes sure the shop exists, acting for merchants, and, when
// keyFile is given, that the file holds a live key of it (issuing one and
// writing the file, 0600, when it does not). It returns the file's key (""
// without keyFile) and whether it made the shop or a key. Run again, it
// changes nothing: `wxflow dev` and the Procfile's api line run it at every start.
func EnsureShop(ctx context.Context, store *engine.Store, secret []byte, name string, merchants []string, keyFile string) (string, bool, error) {
	made := false
	shop, err := store.Shop(ctx, name)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		shop = engine.Shop{Name: name, Merchants: merchants, CreatedAt: time.Now()}
		if err := store.AddShop(ctx, shop); err != nil && !errors.Is(err, engine.ErrShopExists) {
			return "", false, err
		}
		made = true
	case err != nil:
		return "", false, err
	default:
		for _, m := range merchants {
			if !shop.ActsFor(m) {
				return "", false, fmt.Errorf("%w: shop %s exists, acting for %s, not %s", ErrInvalid, name, strings.Join(shop.Merchants, ","), m)
			}
		}
	}
	if keyFile == "" {
		return "", made, nil
	}
	if b, err := os.ReadFile(keyFile); err == nil {
		key := strings.TrimSpace(string(b))
		if got, err := store.Authenticate(ctx, secret, key); err == nil && got.Name == name {
			return key, made, nil
		}
	}
	key, _, err := IssueShopKey(ctx, store, secret, name)
	if err != nil {
		return "", made, err
	}
	return key, true, WriteKeyFile(keyFile, key)
}

// WriteKeyFile writes a shop key to path, readable by its owner only.
func WriteKeyFile(path, key string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}

// ReadKeyFile reads a shop key written by WriteKeyFile.
func ReadKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("shop key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
