// Package metrics holds wxflow's Prometheus registry and its adapters: the
// engine's Observer, the API's response counter, the WeChat clients'
// transport wrapper and the deployment gauges read at scrape time. Every
// process builds one Metrics and serves it at /metrics.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
)

// Metrics are wxflow's Prometheus metrics, in a registry of their own (no
// package-level state). One value serves a whole process: it observes the
// engine, wraps the WeChat HTTP clients and is served at /metrics.
type Metrics struct {
	Registry    *prometheus.Registry
	transitions *prometheus.CounterVec
	refused     *prometheus.CounterVec
	calls       *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	responses   *prometheus.CounterVec
	books       *booksMetrics
}

// New registers the counters and histograms; Go and process
// collectors come with them.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_transitions_total",
		Help: "Applied order events, by merchant, state before and after and event type."}, []string{"merchant", "from", "to", "event"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_commands_refused_total",
		Help: "Commands recorded as no-ops, by verb and reason code."}, []string{"verb", "code"})
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_wechat_calls_total",
		Help: "Calls to WeChat by API, host (primary, or backup: WeChat Pay's backup host) and outcome (HTTP status class, or error)."}, []string{"api", "host", "outcome"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wxflow_wechat_call_seconds",
		Help: "Latency of calls to WeChat by API.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 13)}, []string{"api"})
	m.responses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_http_responses_total",
		Help: "Answers of the API by route and status: refused input shows as 4xx here."}, []string{"route", "status"})
	m.Registry.MustRegister(m.transitions, m.refused, m.calls, m.latency, m.responses,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.books = newBooksMetrics(m.Registry)
	return m
}

// Transition counts an applied event (engine.Observer).
// The merchant label is bounded by the deployment's merchants: an order's
// merchant is one the API or a shop's NATS user may act for.
func (m *Metrics) Transition(merchant string, from, to engine.State, t engine.EventType) {
	m.transitions.WithLabelValues(merchant, string(from), string(to), string(t)).Inc()
}

// Refused counts a no-op command (engine.Observer).
func (m *Metrics) Refused(verb engine.Verb, code engine.RefusalCode) {
	m.refused.WithLabelValues(string(verb), string(code)).Inc()
}

// Response counts one answer of the API; route is the matched pattern.
func (m *Metrics) Response(route string, status int) {
	m.responses.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// WrapTransport counts and times every call a WeChat client makes. The API
// label is the URL path without ids (/v3/pay/transactions/out-trade-no/{no});
// the host label is "primary" (see WrapTransportHosts).
func (m *Metrics) WrapTransport(next http.RoundTripper) http.RoundTripper {
	return m.WrapTransportHosts(next, nil)
}

// WrapTransportHosts is WrapTransport whose host label is hostOf(request):
// "primary" or "backup" (WeChat Pay's backup host), the role a failover
// transport above this one gave the attempt; "primary" when hostOf is nil
// or says nothing. Below a failover transport, each attempt is one call.
func (m *Metrics) WrapTransportHosts(next http.RoundTripper, hostOf func(*http.Request) string) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		api := apiLabel(r.URL.Path)
		start := time.Now()
		resp, err := next.RoundTrip(r)
		m.latency.WithLabelValues(api).Observe(time.Since(start).Seconds())
		outcome := "error"
		if err == nil {
			outcome = strconv.Itoa(resp.StatusCode/100) + "xx"
		}
		host := "primary"
		if hostOf != nil && hostOf(r) == "backup" {
			host = "backup"
		}
		m.calls.WithLabelValues(api, host, outcome).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// apiLabel keeps metric cardinality bounded: the path up to the first id.
func apiLabel(path string) string {
	for _, prefix := range []string{"/v3/pay/transactions/out-trade-no/", "/v3/refund/domestic/refunds/"} {
		if strings.HasPrefix(path, prefix) {
			rest := strings.TrimPrefix(path, prefix)
			if i := strings.Index(rest, "/"); i >= 0 {
				return prefix + "{no}" + rest[i:]
			}
			return prefix + "{no}"
		}
	}
	return path
}

// ObserveDeployment adds the gauges read from the store and NATS at scrape
// time: outbox backlog, stuck orders by state, consumer lag, how full each
// stream is, and the API's notification counters.
func (m *Metrics) ObserveDeployment(store *engine.Store, js jetstream.JetStream, srv *api.Server) {
	m.Registry.MustRegister(&deploymentCollector{store: store, js: js, srv: srv})
}

var (
	backlogDesc  = prometheus.NewDesc("wxflow_outbox_backlog", "Outbox rows not yet published.", nil, nil)
	stuckDesc    = prometheus.NewDesc("wxflow_stuck_orders", "Orders stuck, by merchant and state.", []string{"merchant", "state"}, nil)
	lagDesc      = prometheus.NewDesc("wxflow_consumer_pending", "Messages not yet delivered or not yet acked, by stream and consumer.", []string{"stream", "consumer"}, nil)
	notifiedDesc = prometheus.NewDesc("wxflow_notifications_total", "WeChat notifications, by result.", []string{"result"}, nil)
	refusedDesc  = prometheus.NewDesc("wxflow_notifications_refused_total", "Notifications refused, by reason: signature and foreign ones are forged or tampered.", []string{"reason"}, nil)
	fillDesc     = prometheus.NewDesc("wxflow_stream_fill_ratio", "How full each stream is against its limits (the fuller of bytes and messages): at 1 the command stream refuses commands, the others drop their oldest.", []string{"stream"}, nil)
)

type deploymentCollector struct {
	store *engine.Store
	js    jetstream.JetStream
	srv   *api.Server
}

func (c *deploymentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- stuckDesc
	ch <- lagDesc
	ch <- notifiedDesc
	ch <- refusedDesc
	ch <- fillDesc
}

func (c *deploymentCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if backlog, err := c.store.OutboxBacklog(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(backlog))
	}
	var deadlines map[engine.State]time.Duration
	if c.srv != nil {
		deadlines = c.srv.Deadlines()
	}
	if stuck, err := c.store.Stuck(ctx, engine.StuckFilter{Deadlines: deadlines}); err == nil {
		type key struct {
			merchant string
			state    engine.State
		}
		n := map[key]float64{}
		merchants := map[string]bool{}
		if c.srv != nil {
			for _, m := range c.srv.Merchants() { // every merchant has its zeros
				merchants[m] = true
			}
		}
		for _, o := range stuck {
			n[key{o.Merchant, o.State}]++
			merchants[o.Merchant] = true
		}
		for m := range merchants {
			for _, st := range engine.AllStates {
				ch <- prometheus.MustNewConstMetric(stuckDesc, prometheus.GaugeValue, n[key{m, st}], m, string(st))
			}
		}
	}
	fills, _ := engine.StreamFills(ctx, c.js) // a stream NATS cannot describe now has no sample
	for _, f := range fills {
		ch <- prometheus.MustNewConstMetric(fillDesc, prometheus.GaugeValue, f.Ratio, f.Stream)
	}
	for _, stream := range []string{engine.CommandStream, engine.EventStream} {
		s, err := c.js.Stream(ctx, stream)
		if err != nil {
			continue
		}
		lister := s.ListConsumers(ctx)
		for info := range lister.Info() {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue,
				float64(info.NumPending)+float64(info.NumAckPending), stream, info.Name)
		}
	}
	if c.srv != nil {
		ch <- prometheus.MustNewConstMetric(notifiedDesc, prometheus.CounterValue, float64(c.srv.Counters.NotificationsAccepted.Load()), "accepted")
		ch <- prometheus.MustNewConstMetric(notifiedDesc, prometheus.CounterValue, float64(c.srv.Counters.NotificationsRejected.Load()), "rejected")
		for _, why := range api.Refusals() {
			ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(c.srv.Counters.NotificationsRefused[why].Load()), why.String())
		}
	}
}
