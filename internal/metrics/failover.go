package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxflow/wxflow/workers/wechat/failover"
)

var (
	hostStateDesc = prometheus.NewDesc("wxflow_wechat_host_state",
		"WeChat Pay hosts' breakers: 0 closed (in use), 1 half-open (one call is trying it again), 2 open (resting after failures; calls go to the other host).",
		[]string{"host"}, nil)
	hostOpenedDesc = prometheus.NewDesc("wxflow_wechat_host_opened_total",
		"Times a WeChat Pay host's breaker opened: the host failed and calls went to the other one.", []string{"host"}, nil)
)

// ObserveFailover adds the state of the WeChat Pay hosts' breakers, read at
// scrape time. Call it once per Hosts; a second call is ignored.
func (m *Metrics) ObserveFailover(h *failover.Hosts) {
	_ = m.Registry.Register(&failoverCollector{h: h})
}

type failoverCollector struct{ h *failover.Hosts }

func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostStateDesc
	ch <- hostOpenedDesc
}

func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.h.Status() {
		ch <- prometheus.MustNewConstMetric(hostStateDesc, prometheus.GaugeValue, float64(st.State), string(st.Role))
		ch <- prometheus.MustNewConstMetric(hostOpenedDesc, prometheus.CounterValue, float64(st.Opened), string(st.Role))
	}
}
