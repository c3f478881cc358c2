package engine

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Webhooks: a shop that does not listen on NATS registers HTTP endpoints,
// and every event of its merchants' orders is queued for each of them in the
// transaction that writes the event (store_webhooks.go). workers/webhook
// delivers the queue: signed, at least once, in order per order. The engine
// knows nothing of HTTP: it keeps the endpoints, their sealed secrets and the
// deliveries' state.

// WebhookEndpoint is one URL of a shop that receives every event of the
// shop's merchants (the same events the shop's NATS user may hear). Its
// signing secret is stored sealed under the server secret (Sealed), never
// in the clear; it is shown once, when the endpoint is made.
type WebhookEndpoint struct {
	ID        string     `json:"id" db:"id"`
	Shop      string     `json:"shop" db:"shop"`
	URL       string     `json:"url" db:"url"`
	Sealed    string     `json:"-" db:"secret"`
	CreatedAt time.Time  `json:"created_at" db:"created_at"`
	RemovedAt *time.Time `json:"removed_at,omitempty" db:"removed_at"`
}

// WebhookEndpointStatus is an endpoint with how its deliveries stand, for
// the admin tools: pending (queued or retrying), delivered (kept for the
// retention), failed (given up after the retry window; an admin resends).
type WebhookEndpointStatus struct {
	WebhookEndpoint
	Pending   int `json:"pending" db:"pending"`
	Delivered int `json:"delivered" db:"delivered"`
	Failed    int `json:"failed" db:"failed"`
}

// WebhookSecretPrefix starts every signing secret: whsec_<52 of [0-9a-v]>
// (256 random bits), so that a leaked one is recognised. The receiver's HMAC
// key is the whole string, prefix included.
const WebhookSecretPrefix = "whsec_"

// MaxWebhookEndpoints is how many live endpoints one shop may have: every
// event is queued once per endpoint, in the engine's transaction.
const MaxWebhookEndpoints = 16

// Errors of webhooks that callers handle.
var (
	// ErrTooManyEndpoints: the shop has MaxWebhookEndpoints live endpoints.
	ErrTooManyEndpoints = errors.New("engine: too many webhook endpoints")
	// ErrSealedSecret: a stored secret does not open under the server secret
	// given (another deployment's file, or a damaged row).
	ErrSealedSecret = errors.New("engine: webhook secret does not open under this server secret")
)

// WebhookState is where a delivery stands.
type WebhookState string

// The states of a delivery.
const (
	WebhookPending   WebhookState = "pending"   // due at next_at, or waiting for an earlier event of its order
	WebhookDelivered WebhookState = "delivered" // the endpoint answered 2xx
	WebhookFailed    WebhookState = "failed"    // given up after the retry window; an admin may resend
	WebhookCancelled WebhookState = "cancelled" // its endpoint was removed before it was delivered
)

// Valid reports whether st is one of the states.
func (st WebhookState) Valid() bool {
	switch st {
	case WebhookPending, WebhookDelivered, WebhookFailed, WebhookCancelled:
		return true
	}
	return false
}

// WebhookDelivery is one event for one endpoint: at most one per endpoint
// and event id, whatever happens (the dedupe key).
type WebhookDelivery struct {
	ID         int64        `json:"id" db:"id"`
	EndpointID string       `json:"endpoint_id" db:"endpoint_id"`
	EventID    string       `json:"event_id" db:"event_id"`
	EventType  EventType    `json:"event_type" db:"event_type"`
	OrderID    OrderID      `json:"order_id" db:"order_id"`
	Seq        int64        `json:"seq" db:"seq"`
	State      WebhookState `json:"state" db:"state"`
	// Attempts counts every POST made, over resends too.
	Attempts int `json:"attempts" db:"attempts"`
	// CreatedAt is when the event was queued for the endpoint; QueuedAt when
	// the current round began (CreatedAt, or the last resend): the retry
	// window counts from it.
	CreatedAt time.Time `json:"created_at" db:"created_at"`
	QueuedAt  time.Time `json:"queued_at" db:"queued_at"`
	// NextAt is when a pending delivery is next due.
	NextAt        time.Time  `json:"next_at" db:"next_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty" db:"last_attempt_at"`
	// LastStatus is the endpoint's last HTTP status, 0 when it gave none.
	LastStatus int    `json:"last_status,omitempty" db:"last_status"`
	LastError  string `json:"last_error,omitempty" db:"last_error"`
	// DoneAt is when it was delivered, given up or cancelled.
	DoneAt *time.Time `json:"done_at,omitempty" db:"done_at"`
}

// WebhookJob is a delivery a deliverer has claimed: what it sends, where,
// and the lease it holds until it reports the outcome.
type WebhookJob struct {
	WebhookDelivery
	URL    string `db:"url"`
	Sealed string `db:"secret"`
	// Payload is the event's JSON exactly as published on NATS (the outbox row).
	Payload []byte `db:"payload"`
	// Lease names the claim; only its holder may report the outcome.
	Lease string `db:"lease_owner"`
}

// NewWebhookEndpoint makes an endpoint of shop for url (which the caller
// has checked) with a fresh signing secret: the secret itself, to show once,
// and the record to store, the secret sealed under serverSecret.
func NewWebhookEndpoint(serverSecret []byte, shop, url string, now time.Time) (string, WebhookEndpoint, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", WebhookEndpoint{}, fmt.Errorf("engine: webhook secret: %w", err)
	}
	secret := WebhookSecretPrefix + idEncoding.EncodeToString(raw[:])
	ep := WebhookEndpoint{ID: NewID("whe"), Shop: shop, URL: url, CreatedAt: now.UTC()}
	sealed, err := sealWebhookSecret(serverSecret, ep.ID, secret)
	if err != nil {
		return "", WebhookEndpoint{}, err
	}
	ep.Sealed = sealed
	return secret, ep, nil
}

// SigningSecret opens the endpoint's sealed secret under serverSecret;
// [ErrSealedSecret] when it does not open.
func (e WebhookEndpoint) SigningSecret(serverSecret []byte) (string, error) {
	return OpenWebhookSecret(serverSecret, e.ID, e.Sealed)
}

// sealedPrefix versions the sealed form: v1.<base64url(nonce ‖ AES-256-GCM ciphertext)>.
const sealedPrefix = "v1."

// webhookAEAD is AES-256-GCM under a key derived from the server secret for
// this use alone, so the secret that keys shop key hashes never keys a cipher.
func webhookAEAD(serverSecret []byte) (cipher.AEAD, error) {
	if len(serverSecret) < 32 {
		return nil, errors.New("engine: webhook secrets: the server secret is shorter than 32 bytes")
	}
	m := hmac.New(sha256.New, serverSecret)
	m.Write([]byte("wxflow webhook secret\x00"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealWebhookSecret seals secret for the endpoint id: the id is the
// additional data, so a sealed secret copied onto another endpoint's row
// does not open.
func sealWebhookSecret(serverSecret []byte, id, secret string) (string, error) {
	aead, err := webhookAEAD(serverSecret)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("engine: webhook secret: %w", err)
	}
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(secret), []byte(id))), nil
}

// OpenWebhookSecret opens a sealed secret of endpoint id under
// serverSecret; [ErrSealedSecret] when it does not open.
func OpenWebhookSecret(serverSecret []byte, id, sealed string) (string, error) {
	aead, err := webhookAEAD(serverSecret)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	raw, derr := base64.RawURLEncoding.DecodeString(rest)
	if !ok || derr != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrSealedSecret
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(id))
	if err != nil {
		return "", ErrSealedSecret
	}
	return string(plain), nil
}
