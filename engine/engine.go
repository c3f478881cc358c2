package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Config configures an [Engine]. Zero fields take the defaults of Validate.
type Config struct {
	// IntakeShards is how many commands of different orders are applied at
	// once; one order's commands always go to the same shard, in order. 1 on
	// SQLite (one writer: parallel transactions only wait on each other; measured
	// slower), 8 on PostgreSQL.
	IntakeShards int
	// IntakeBatch is the most commands a shard applies in one transaction
	// (group commit; 64). 1 applies each in its own.
	IntakeBatch int
	// RelayBatch is the most outbox rows published per round (256).
	RelayBatch int
	// RelayInterval is how often the relay looks for rows nobody woke it for (200 ms).
	RelayInterval time.Duration
	// ExpiryInterval is how often unpaid orders past expires_at are closed (1 s).
	ExpiryInterval time.Duration
	// DefaultExpiry is an order's lifetime when the shop gives none (2 h, a prepay_id's life).
	DefaultExpiry time.Duration
	// Reconcile tunes the reconciler.
	Reconcile ReconcileConfig
	// Refunds tunes the refund queue (refundqueue.go).
	Refunds RefundConfig
	// Streams configures what Provision declares.
	Streams StreamsConfig
	// StreamCheckInterval is how often the engine measures how full the
	// streams are, to warn before one fills (30 s).
	StreamCheckInterval time.Duration
	// ShopFeedInterval is how often the engine makes the feed consumers of
	// new shops and deletes those of shops gone (10 s; shopfeed.go).
	ShopFeedInterval time.Duration
	// Observer hears every applied transition and every refusal (metrics); optional.
	Observer Observer
	// Logger receives the engine's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate fills the defaults and reports impossible values.
func (c *Config) Validate() error {
	if c.RelayBatch == 0 {
		c.RelayBatch = 256
	}
	if c.IntakeBatch <= 0 {
		c.IntakeBatch = 64
	}
	if c.RelayInterval == 0 {
		c.RelayInterval = 200 * time.Millisecond
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = time.Second
	}
	if c.DefaultExpiry == 0 {
		c.DefaultExpiry = 2 * time.Hour
	}
	if c.StreamCheckInterval == 0 {
		c.StreamCheckInterval = 30 * time.Second
	}
	if c.ShopFeedInterval == 0 {
		c.ShopFeedInterval = 10 * time.Second
	}
	c.Reconcile.defaults()
	c.Refunds.defaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RelayBatch < 0 || c.RelayInterval < 0 || c.ExpiryInterval < 0 || c.StreamCheckInterval < 0 || c.ShopFeedInterval < 0 {
		return errors.New("engine: negative relay batch or interval")
	}
	return c.Refunds.validate()
}

// Observer hears what Apply did, after the transaction committed. It must be
// fast and safe for concurrent use (a metrics adapter, typically).
type Observer interface {
	// Transition hears one applied event of an order of merchant.
	Transition(merchant string, from, to State, t EventType)
	Refused(verb Verb, code RefusalCode)
}

// Engine applies commands to orders and publishes the facts. Several engine
// processes may share one PostgreSQL store and one NATS: they split the
// commands (a work queue), the store's row lock, version check and unique
// keys keep each order's transitions in order and each once, and the relay,
// expiry, reconciler and refund queue take turns (turns.go).
type Engine struct {
	cfg   Config
	store *Store
	nc    *nats.Conn
	js    jetstream.JetStream
	relay *Relay
	log   *slog.Logger

	fillMu    sync.Mutex
	fillLevel map[string]int // per stream: 0 below the warning, 1 past it, 2 full (CheckStreams)
}

// New builds an engine over a store and a NATS connection.
func New(cfg Config, store *Store, nc *nats.Conn, js jetstream.JetStream) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IntakeShards == 0 {
		cfg.IntakeShards = 1
		if store.dialect == Postgres {
			cfg.IntakeShards = 8
		}
	}
	e := &Engine{cfg: cfg, store: store, nc: nc, js: js, log: cfg.Logger.With("component", "engine"), fillLevel: map[string]int{}}
	e.relay = newRelay(store, js, cfg.RelayBatch, cfg.RelayInterval, e.log)
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() *Store { return e.store }

// Relay returns the engine's outbox relay.
func (e *Engine) Relay() *Relay { return e.relay }

// Run consumes commands, relays the outbox, closes expired orders,
// reconciles quiet ones, sends queued refunds when due, watches the streams
// fill and keeps the shops' feeds until ctx ends; then it drains and returns.
func (e *Engine) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.relay.Run(ctx) })
	g.Go(func() error { return e.runIntake(ctx) })
	g.Go(func() error { return e.runExpiry(ctx) })
	g.Go(func() error { return e.runReconcile(ctx) })
	g.Go(func() error { return e.runRefundQueue(ctx) })
	g.Go(func() error { return e.runStreamWatch(ctx) })
	g.Go(func() error { return e.runShopFeeds(ctx) })
	return g.Wait()
}
