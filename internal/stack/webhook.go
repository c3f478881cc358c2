package stack

import (
	"context"
	"errors"
	"log/slog"

	"github.com/wxflow/wxflow/internal/metrics"
	"github.com/wxflow/wxflow/workers/webhook"
)

// WorkerWebhook is the kind of the webhook deliverer: it sends every event
// of a shop's merchants to the shop's endpoints. It works on the store
// alone (and the server secret, which opens the endpoints' signing
// secrets): no NATS user, no WeChat keys.
const WorkerWebhook = "webhook"

// NewWebhooks builds the webhook deliverer on c's store: the server secret
// of s, its AllowPrivate, WorkerLanes senders; cfg's other fields (zero:
// the package's defaults) as given.
func NewWebhooks(s *Settings, c *Conns, cfg webhook.Config) (*webhook.Deliverer, error) {
	if c.Store == nil {
		return nil, errors.New("the webhook worker needs the store (--db)")
	}
	secret, err := s.ServerSecret()
	if err != nil {
		return nil, err
	}
	cfg.Secret, cfg.AllowPrivate, cfg.Logger = secret, s.WebhookAllowPrivate, c.Log
	if cfg.Concurrency == 0 {
		cfg.Concurrency = s.WorkerLanes
	}
	if c.Metrics != nil && cfg.Observer == nil {
		cfg.Observer = c.Metrics.ObserveWebhooks(c.Store)
	}
	return webhook.New(cfg, c.Store)
}

// ConnectStore opens what a process that needs only the store has: the
// store (migrated), metrics and the logger; no NATS.
func ConnectStore(ctx context.Context, s *Settings, log *slog.Logger) (*Conns, error) {
	store, err := OpenStore(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Conns{Store: store, Metrics: metrics.New(), Log: log}, nil
}
