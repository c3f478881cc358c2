package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// HostState is one WeChat Pay host's breaker, as ObserveHosts reads it.
type HostState struct {
	Host   string // "primary" or "backup"
	State  int    // 0 closed, 1 half-open, 2 open
	Opened uint64 // times the breaker opened
}

var (
	hostStateDesc = prometheus.NewDesc("wxflow_wechat_host_state",
		"WeChat Pay hosts' breakers: 0 closed (in use), 1 half-open (one call is trying it again), 2 open (resting after failures; calls go to the other host).",
		[]string{"host"}, nil)
	hostOpenedDesc = prometheus.NewDesc("wxflow_wechat_host_opened_total",
		"Times a WeChat Pay host's breaker opened: the host failed and calls went to the other one.", []string{"host"}, nil)
)

// ObserveHosts adds the state of the WeChat Pay hosts' breakers, read from
// hosts at scrape time. Call it once; a second call is ignored.
func (m *Metrics) ObserveHosts(hosts func() []HostState) {
	_ = m.Registry.Register(&hostsCollector{hosts: hosts})
}

type hostsCollector struct{ hosts func() []HostState }

func (c *hostsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostStateDesc
	ch <- hostOpenedDesc
}

func (c *hostsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.hosts() {
		ch <- prometheus.MustNewConstMetric(hostStateDesc, prometheus.GaugeValue, float64(h.State), h.Host)
		ch <- prometheus.MustNewConstMetric(hostOpenedDesc, prometheus.CounterValue, float64(h.Opened), h.Host)
	}
}
