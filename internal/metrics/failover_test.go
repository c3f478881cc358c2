package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// samples returns the values of a metric family by its labels, "k=v,k=v" in
// the registry's (sorted) order.
func samples(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			key := ""
			for i, l := range s.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			v := s.GetCounter().GetValue() + s.GetGauge().GetValue()
			out[key] = v
		}
	}
	return out
}

// TestHostLabel: the host label has two values whatever hostOf says, so a
// request cannot grow the metric's cardinality.
func TestHostLabel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	m := New()
	for _, hostOf := range []func(*http.Request) string{
		nil,
		func(*http.Request) string { return "backup" },
		func(*http.Request) string { return "primary" },
		func(r *http.Request) string { return r.URL.Query().Get("host") },
	} {
		c := &http.Client{Transport: m.WrapTransportHosts(&http.Transport{}, hostOf)}
		resp, err := c.Get(srv.URL + "/pay/orderquery?host=evil.example")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := samples(t, m, "wxflow_wechat_calls_total")
	want := map[string]float64{"api=/pay/orderquery,host=primary,outcome=2xx": 3, "api=/pay/orderquery,host=backup,outcome=2xx": 1}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestObserveHosts(t *testing.T) {
	m := New()
	m.ObserveHosts(func() []HostState {
		return []HostState{{Host: "primary", State: 2, Opened: 3}, {Host: "backup", State: 0}}
	})
	m.ObserveHosts(func() []HostState { return nil }) // ignored
	state, opened := samples(t, m, "wxflow_wechat_host_state"), samples(t, m, "wxflow_wechat_host_opened_total")
	if state["host=primary"] != 2 || state["host=backup"] != 0 || len(state) != 2 || opened["host=primary"] != 3 {
		t.Errorf("state %v, opened %v", state, opened)
	}
}
