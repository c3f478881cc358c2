package engine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Shop is a business that acts through the shop API: it creates orders for
// the merchants it may act for and sees and acts only on its own orders
// (Order.Shop). It authenticates with API keys (ShopKey), several live at
// once so that a key can be rotated without downtime.
type Shop struct {
	Name      string    `json:"name" db:"name"`
	Merchants []string  `json:"merchants"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// ActsFor says whether the shop may act for merchant.
func (s Shop) ActsFor(merchant string) bool {
	for _, m := range s.Merchants {
		if m == merchant {
			return true
		}
	}
	return false
}

// ShopKey is one API key of a shop as the store keeps it: its public id and
// the HMAC-SHA256 of the whole key under the server secret, never the key.
// A database that leaks gives no key; without the server secret its hashes
// cannot even be tested against guesses.
type ShopKey struct {
	ID        string     `json:"id" db:"id"`
	Shop      string     `json:"shop" db:"shop"`
	Hash      string     `json:"-" db:"hash"`
	CreatedAt time.Time  `json:"created_at" db:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
}

// Live says whether the key still authenticates.
func (k ShopKey) Live() bool { return k.RevokedAt == nil }

// ShopKeyPrefix starts every shop API key: wxs_<key id>_<secret>. The prefix
// lets secret scanners and people recognise a leaked key; the key id is
// public (listed, named in revocations, logged); the secret is 256 bits.
const ShopKeyPrefix = "wxs_"

// Errors of shops that callers handle.
var (
	// ErrShopExists: a shop of that name exists already.
	ErrShopExists = errors.New("engine: shop exists already")
	// ErrBadKey: the key is malformed, unknown, revoked, or its shop is gone.
	// One error for all, so that an answer tells a guesser nothing.
	ErrBadKey = errors.New("engine: invalid shop key")
)

// ValidShopName reports whether name can name a shop or a merchant: 1–32
// of [a-z0-9_-], starting with a letter or a digit, so it is safe in file
// names, logs and key files, and as a token of NATS subjects
// (wxflow.evt.<merchant>.…, wxflow.cmd.<verb>.shop_<shop>) and users.
func ValidShopName(name string) bool {
	if len(name) == 0 || len(name) > 32 || name[0] == '-' || name[0] == '_' {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewShopKey makes a new key for shop: the key itself, to show once, and
// its record to store (its hash under secret).
func NewShopKey(secret []byte, shop string, now time.Time) (string, ShopKey) {
	var id [8]byte
	var sec [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	if _, err := rand.Read(sec[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	keyID := idEncoding.EncodeToString(id[:])
	key := ShopKeyPrefix + keyID + "_" + idEncoding.EncodeToString(sec[:])
	return key, ShopKey{ID: keyID, Shop: shop, Hash: HashShopKey(secret, key), CreatedAt: now.UTC()}
}

// ShopKeyID returns the public id of a key of the form wxs_<id>_<secret>,
// and false when key does not have that form.
func ShopKeyID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, ShopKeyPrefix)
	if !ok {
		return "", false
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 13 || len(sec) != 52 {
		return "", false
	}
	for _, c := range id + sec {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
			return "", false
		}
	}
	return id, true
}

// HashShopKey is the stored form of a key: HMAC-SHA256 under the server
// secret, hex. Keyed rather than a plain hash, so that a stolen table is
// useless without the secret file too.
func HashShopKey(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("wxflow shop key\x00"))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// keyMatches compares a key's hash with the stored one in constant time.
func keyMatches(secret []byte, key string, stored ShopKey) bool {
	return hmac.Equal([]byte(HashShopKey(secret, key)), []byte(stored.Hash))
}
