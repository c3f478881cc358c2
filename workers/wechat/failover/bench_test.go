package failover_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// BenchmarkTransport is what failing over costs a call while the primary
// answers: the same POST to a local server straight through an
// http.Transport, and through Hosts.Transport over it.
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "<xml><return_code>SUCCESS</return_code></xml>")
	}))
	defer srv.Close()
	hosts, err := failover.New(failover.Config{Primary: srv.URL, Backup: "https://backup.invalid"})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rt   func(http.RoundTripper) http.RoundTripper
	}{
		{"direct", func(rt http.RoundTripper) http.RoundTripper { return rt }},
		{"failover", func(rt http.RoundTripper) http.RoundTripper { return hosts.Transport(rt, nil) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			next := &http.Transport{MaxIdleConnsPerHost: 64}
			defer next.CloseIdleConnections()
			client := &http.Client{Transport: bc.rt(next)}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(srv.URL+"/pay/orderquery", "text/xml", strings.NewReader("<xml><out_trade_no>1</out_trade_no></xml>"))
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
