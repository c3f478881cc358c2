package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxflow/wxflow/engine"
)

// ObserveWebhooks registers the webhook deliverer's metrics and returns its
// observer: attempts by result (wxflow_webhook_deliveries_total{result}:
// delivered, retry, failed) and their latency, and, read from the store at
// scrape time, the deliveries pending (wxflow_webhook_backlog), the age of
// the oldest of them and the deliveries given up and not resent
// (wxflow_webhook_failed: each needs an admin). No label names an order or
// an endpoint. Call it once per process.
// The observer has the method of workers/webhook's Observer, which this
// package may not import.
func (m *Metrics) ObserveWebhooks(store *engine.Store) WebhookObserver {
	o := &webhookObserver{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result: delivered (2xx), retry (anything else; tried again later), failed (given up after the retry window)."}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wxflow_webhook_attempt_seconds",
			Help: "How long one webhook delivery attempt took, answer included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
	}
	for _, r := range []string{"delivered", "retry", "failed"} {
		o.attempts.WithLabelValues(r)
	}
	m.Registry.MustRegister(o.attempts, o.seconds, &webhookCollector{store: store})
	return o
}

// WebhookObserver counts webhook delivery attempts (workers/webhook.Observer).
type WebhookObserver interface {
	WebhookAttempt(result string, took time.Duration)
}

type webhookObserver struct {
	attempts *prometheus.CounterVec
	seconds  prometheus.Histogram
}

func (o *webhookObserver) WebhookAttempt(result string, took time.Duration) {
	o.attempts.WithLabelValues(result).Inc()
	o.seconds.Observe(took.Seconds())
}

var (
	webhookBacklogDesc = prometheus.NewDesc("wxflow_webhook_backlog", "Webhook deliveries pending: queued, retrying, or waiting for an earlier event of their order.", nil, nil)
	webhookOldestDesc  = prometheus.NewDesc("wxflow_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery (0 when none).", nil, nil)
	webhookFailedDesc  = prometheus.NewDesc("wxflow_webhook_failed", "Webhook deliveries given up after the retry window and not resent: an admin should look (wxflow shop webhook deliveries … --state failed).", nil, nil)
)

type webhookCollector struct{ store *engine.Store }

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- webhookBacklogDesc
	ch <- webhookOldestDesc
	ch <- webhookFailedDesc
}

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	b, err := c.store.WebhookBacklog(ctx)
	if err != nil {
		return // no sample rather than a wrong one
	}
	age := 0.0
	if !b.Oldest.IsZero() {
		age = time.Since(b.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(webhookBacklogDesc, prometheus.GaugeValue, float64(b.Pending))
	ch <- prometheus.MustNewConstMetric(webhookOldestDesc, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(webhookFailedDesc, prometheus.GaugeValue, float64(b.Failed))
}
