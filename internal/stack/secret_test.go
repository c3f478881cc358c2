package stack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// TestServerSecret: made once, 0600, the same for every process that races
// to make it; never made at a path the settings name; refused when others
// may read it or it is not a secret.
func TestServerSecret(t *testing.T) {
	dir := t.TempDir()
	path := DefaultSecretFile(dir)
	secrets := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Go(func() {
			b, err := LoadServerSecret(path, true)
			if err != nil {
				t.Error(err)
			}
			secrets[i] = b
		})
	}
	wg.Wait()
	for _, b := range secrets[1:] {
		if len(b) != SecretBytes || !bytes.Equal(b, secrets[0]) {
			t.Fatalf("processes made different secrets: %x, %x", secrets[0], b)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	named := Settings{DataDir: dir, SecretFile: filepath.Join(dir, "elsewhere.key")}
	if _, err := named.ServerSecret(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a named secret file that does not exist: %v, want it not made", err)
	}
	bad := []struct{ name, content string }{{"short", "abcd\n"}, {"not hex", "zz\n"}}
	for _, tc := range bad {
		p := filepath.Join(dir, tc.name)
		_ = os.WriteFile(p, []byte(tc.content), 0o600)
		if _, err := LoadServerSecret(p, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServerSecret(path, true); !errors.Is(err, ErrInvalid) {
		t.Errorf("a secret others may read: %v", err)
	}
}

// TestEnsureShop: the demo shop and its key file are made once; run again,
// nothing changes; a key file whose key no longer works gets a new one.
func TestEnsureShop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := engine.Open(ctx, "sqlite:"+filepath.Join(dir, "wxflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secret := bytes.Repeat([]byte{7}, SecretBytes)
	file := ShopKeyFile(dir, DemoShop)
	k1, made, err := EnsureShop(ctx, store, secret, DemoShop, []string{"default"}, file)
	if err != nil || !made || k1 == "" {
		t.Fatalf("first: %q %v %v", k1, made, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k2, made, err := EnsureShop(ctx, store, secret, DemoShop, []string{"default"}, file)
	if err != nil || made || k2 != k1 {
		t.Fatalf("again: %q %v %v, want the same key, nothing made", k2, made, err)
	}
	if _, _, err := EnsureShop(ctx, store, secret, DemoShop, []string{"other"}, file); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the shop for another merchant: %v", err)
	}
	if _, err := store.RevokeShopKeys(ctx, DemoShop, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	k3, made, err := EnsureShop(ctx, store, secret, DemoShop, []string{"default"}, file)
	if err != nil || !made || k3 == k1 {
		t.Fatalf("after revoking: %q %v %v, want a new key", k3, made, err)
	}
	if got, err := ReadKeyFile(file); err != nil || got != k3 {
		t.Fatalf("key file holds %q (%v), want %q", got, err, k3)
	}
}
