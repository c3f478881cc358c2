package stack

import (
	"github.com/wxflow/wxflow/engine"
)

// NewEngine builds the engine process's part: command intake, outbox relay,
// expiry and reconciler, on c's store and NATS. Zero durations in s take the
// engine's defaults.
func NewEngine(s *Settings, c *Conns) (*engine.Engine, error) {
	cfg := engine.Config{Logger: c.Log, ExpiryInterval: s.ExpiryInterval,
		Reconcile: engine.ReconcileConfig{Interval: s.ExpiryInterval, PaymentDelay: s.ReconcilePaymentAfter, RefundDelay: s.ReconcileRefundAfter}}
	cfg.Refunds = engine.RefundConfig{Gap: s.RefundGap, Interval: s.ExpiryInterval}
	if c.Metrics != nil {
		cfg.Observer = c.Metrics
	}
	return engine.New(cfg, c.Store, c.NC, c.JS)
}
