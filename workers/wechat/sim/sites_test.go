package sim_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// sites is a world whose simulator also serves the backup site, and pay
// clients that fail over from the primary to it.
type sites struct {
	*world
	backupURL string
	hosts     *failover.Hosts
	now       *time.Time // the breakers' clock, moved by hand
	pv2       *v2.Client
	pv3       *v3.Client
}

func newSites(t *testing.T) *sites {
	t.Helper()
	w := newWorld(t, sim.Config{})
	backup := httptest.NewUnstartedServer(w.sim.Site(sim.SiteBackup))
	backup.TLS = w.sim.ServerTLSConfig()
	backup.StartTLS()
	t.Cleanup(backup.Close)
	now := time.Unix(1_700_000_000, 0)
	s := &sites{world: w, backupURL: backup.URL, now: &now}
	var err error
	if s.hosts, err = failover.New(failover.Config{Primary: w.url, Backup: backup.URL, CoolDown: time.Minute,
		AttemptTimeout: 300 * time.Millisecond, Now: func() time.Time { return *s.now }}); err != nil {
		t.Fatal(err)
	}
	m := w.sim.Keys().Merchant
	if s.pv2, err = v2.NewClient(v2.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, RootCAs: w.sim.RootCAs(), Failover: s.hosts}); err != nil {
		t.Fatal(err)
	}
	if s.pv3, err = v3.NewClient(v3.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, Failover: s.hosts}); err != nil {
		t.Fatal(err)
	}
	return s
}

// served is how many pay calls each site let through so far.
func (s *sites) served() (primary, backup int) {
	st := s.sim.Outages()
	return st[0].Served, st[1].Served
}

func (s *sites) primaryState() failover.State { return s.hosts.Status()[0].State }

// TestSitesShareOneLedger: with the primary's pay calls failing in each
// mode, calls go to the backup site, which knows the orders the primary
// made (one ledger); the v2 refund goes there over mutual TLS. The
// platform paths and /sim/ keep answering on the primary. Once the outage
// is lifted and the cool-down is over, calls return to the primary.
func TestSitesShareOneLedger(t *testing.T) {
	for _, mode := range []sim.OutageMode{sim.OutageRefuse, sim.Outage502, sim.OutageHang} {
		t.Run(string(mode), func(t *testing.T) {
			s := newSites(t)
			ctx := context.Background()
			uo, err := s.pv2.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "b", OutTradeNo: "S-2", TotalFen: 300, ClientIP: "127.0.0.1", NotifyURL: s.shop.URL + "/v2/pay", OpenID: "o1"})
			if err != nil {
				t.Fatal(err)
			}
			prepay3, err := s.pv3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: "S-3", TotalFen: 300, OpenID: "o1", NotifyURL: s.shop.URL + "/v3/pay"})
			if err != nil {
				t.Fatal(err)
			}
			if p, b := s.served(); p != 2 || b != 0 {
				t.Fatalf("served primary %d backup %d; want 2, 0", p, b)
			}

			if err := s.sim.SetOutage(sim.Outage{Site: sim.SitePrimary, Mode: mode}); err != nil {
				t.Fatal(err)
			}
			s.pay(t, uo.PrepayID) // /sim/ answers on the primary
			s.pay(t, prepay3)
			if _, err := s.mp.AccessToken(ctx); err != nil { // the platform is another site
				t.Fatalf("platform call during the pay outage: %v", err)
			}
			if q, err := s.pv2.OrderQuery(ctx, "S-2"); err != nil || q.TradeState != "SUCCESS" {
				t.Fatalf("v2 query: %+v %v", q, err)
			}
			if tx, err := s.pv3.QueryByOutTradeNo(ctx, "S-3"); err != nil || tx.TradeState != "SUCCESS" {
				t.Fatalf("v3 query: %+v %v", tx, err)
			}
			if r, err := s.pv2.Refund(ctx, v2.RefundRequest{OutTradeNo: "S-2", OutRefundNo: "S-2-r", TotalFen: 300, RefundFen: 100}); err != nil {
				t.Fatalf("v2 refund (mutual TLS) on the backup: %+v %v", r, err)
			}
			if _, err := s.pv3.Refund(ctx, v3.RefundRequest{OutTradeNo: "S-3", OutRefundNo: "S-3-r", TotalFen: 300, RefundFen: 300}); err != nil {
				t.Fatalf("v3 refund on the backup: %v", err)
			}
			if p, b := s.served(); p != 2 || b != 4 {
				t.Fatalf("served primary %d backup %d; want 2, 4", p, b)
			}
			if st := s.primaryState(); st != failover.Open {
				t.Fatalf("primary breaker %s, want open", st)
			}
			// The breaker opens on the third failure; Go's transport may try a
			// GET cut on a kept-alive connection once more by itself.
			if n := s.sim.Snapshot().FaultsInjected["outage_"+string(mode)]; n < 3 || n > 4 {
				t.Errorf("%d pay calls failed by the outage, want 3 (or 4)", n)
			}

			if err := s.sim.SetOutage(sim.Outage{Site: sim.SitePrimary, Mode: sim.OutageNone}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.pv3.QueryRefund(ctx, "S-3-r"); err != nil {
				t.Fatal(err)
			}
			*s.now = s.now.Add(time.Minute)
			for _, no := range []string{"S-2-r", "S-2-r"} {
				if _, err := s.pv2.RefundQuery(ctx, no); err != nil {
					t.Fatal(err)
				}
			}
			if p, b := s.served(); p != 4 || b != 5 {
				t.Fatalf("served primary %d backup %d; want 4, 5 (the backup during the cool-down, then the primary again)", p, b)
			}
			if st := s.primaryState(); st != failover.Closed {
				t.Fatalf("primary breaker %s, want closed", st)
			}
			refunds := 0
			for _, r := range s.sim.Snapshot().Refunds {
				if r.OutRefundNo == "S-2-r" || r.OutRefundNo == "S-3-r" {
					refunds++
				}
			}
			if refunds != 2 {
				t.Errorf("%d refunds in the ledger, want 2", refunds)
			}
		})
	}
}

// TestOutageEnds: an outage set for a while ends by itself, and a hang ends
// with it.
func TestOutageEnds(t *testing.T) {
	w := newWorld(t, sim.Config{})
	if err := w.sim.SetOutage(sim.Outage{Site: sim.SitePrimary, Mode: sim.OutageHang, For: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.v3.QueryByOutTradeNo(ctx, "none")
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a call held by a hang must end with the outage, cut without an answer: %v (ctx %v)", err, ctx.Err())
	}
	if _, err := w.v3.QueryByOutTradeNo(ctx, "none"); wechat.CodeOf(err) != "ORDER_NOT_EXIST" {
		t.Fatalf("after the outage: %v, want WeChat's ORDER_NOT_EXIST", err)
	}
	if st := w.sim.Outages()[0]; st.Mode != sim.OutageNone {
		t.Errorf("outage still shown: %+v", st)
	}
}

// TestOutageAPI: POST /sim/outage takes one strict JSON object; anything
// else is a 400 that changes nothing.
func TestOutageAPI(t *testing.T) {
	w := newWorld(t, sim.Config{})
	post := func(body string) (int, string) {
		resp, err := w.http.Post(w.url+"/sim/outage", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, bad := range []string{
		``, `{}`, `[]`, `{"site":"tertiary","mode":"502"}`, `{"site":"primary","mode":"melt"}`,
		`{"site":"primary","mode":"502","for":"-1s"}`, `{"site":"primary","mode":"502","for":"soon"}`,
		`{"site":"primary","mode":"502","for":30}`, `{"site":"primary","mode":"502","extra":1}`,
		`{"site":"primary","mode":"502"}{"site":"backup","mode":"502"}`,
		`{"site":"primary","mode":"502","for":"` + strings.Repeat("9", 1<<17) + `s"}`,
	} {
		if status, body := post(bad); status != http.StatusBadRequest {
			t.Errorf("%.60q: %d %s, want 400", bad, status, body)
		}
	}
	if st := w.sim.Outages(); st[0].Mode != sim.OutageNone || st[1].Mode != sim.OutageNone {
		t.Fatalf("a refused request changed the outages: %+v", st)
	}
	if status, body := post(`{"site":"backup","mode":"502","for":"1h"}`); status != http.StatusOK || !strings.Contains(body, `"mode":"502"`) {
		t.Fatalf("%d %s", status, body)
	}
	if st := w.sim.Outages()[1]; st.Mode != sim.Outage502 || st.Until.IsZero() {
		t.Fatalf("backup: %+v", st)
	}
	resp, err := w.http.Get(w.url + "/sim/outage")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(err, resp)
	}
	resp.Body.Close()
}

func TestParseOutage(t *testing.T) {
	tests := []struct {
		given   string
		want    sim.Outage
		wantErr bool
	}{
		{given: "primary:502:30s", want: sim.Outage{Site: sim.SitePrimary, Mode: sim.Outage502, For: 30 * time.Second}},
		{given: "backup:refuse", want: sim.Outage{Site: sim.SiteBackup, Mode: sim.OutageRefuse}},
		{given: "primary:hang:1m30s", want: sim.Outage{Site: sim.SitePrimary, Mode: sim.OutageHang, For: 90 * time.Second}},
		{given: "primary", wantErr: true},
		{given: "primary:502:30s:x", wantErr: true},
		{given: "api2:502", wantErr: true},
		{given: "primary:503", wantErr: true},
		{given: "primary:502:-1s", wantErr: true},
		{given: "primary:502:30", wantErr: true},
		{given: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.given, func(t *testing.T) {
			var o sim.Outage
			err := o.Set(tt.given)
			if (err != nil) != tt.wantErr || !tt.wantErr && o != tt.want {
				t.Fatalf("Set(%q) = %+v, %v", tt.given, o, err)
			}
			if !tt.wantErr && o.String() != tt.given {
				t.Errorf("String() = %q, want %q", o.String(), tt.given)
			}
		})
	}
	if err := (sim.Outage{Site: sim.SitePrimary, Mode: sim.Outage502, For: -time.Second}).Validate(); err == nil {
		t.Error("a negative duration must be refused")
	}
}
