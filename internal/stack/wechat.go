package stack

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/metrics"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// WechatClients are the WeChat clients of one merchant, sharing one HTTP
// transport (kept-alive connections: a TLS handshake per call would cost
// more than the call).
type WechatClients struct {
	Merchant *wechat.Merchant
	V2       *v2.Client
	V3       *v3.Client
	MP       *mp.Client
	Pay      *pay.Payments
	// Failover is WeChat Pay's two hosts and their breakers, shared by V2
	// and V3; nil when there is no backup (Settings.WechatPayBackup).
	Failover *failover.Hosts
}

// NewWechatClients loads the merchant's keys from MerchantDir and builds its
// clients, pointed at WeChat's hosts or at WechatURL (the simulator). The
// pay clients fail over to WeChat Pay's backup host when there is one
// (Settings.WechatPayBackup). Every call is counted and timed by m when it
// is not nil, with the host that served it.
func NewWechatClients(s *Settings, m *metrics.Metrics) (*WechatClients, error) {
	merchant, err := wechat.LoadMerchant(s.MerchantName, s.MerchantDir)
	if err != nil {
		return nil, fmt.Errorf("merchant keys in %s: %w", s.MerchantDir, err)
	}
	roots, err := s.RootCAs()
	if err != nil {
		return nil, err
	}
	var transport http.RoundTripper = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	if m != nil {
		transport = m.WrapTransportHosts(transport, hostOf)
	}
	timeout := s.WechatTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	httpClient := &http.Client{Timeout: timeout, Transport: transport}
	mpURL, payURL, _ := s.WechatHosts()
	c := &WechatClients{Merchant: merchant}
	if backup := s.WechatPayBackup(); backup != "" {
		c.Failover, err = failover.New(failover.Config{Primary: payURL, Backup: backup, CoolDown: s.WechatProbeAfter,
			Logger: s.Logger().With("component", "wechat-failover")})
		if err != nil {
			return nil, fmt.Errorf("--wechat-backup-url: %w", err)
		}
		if m != nil {
			m.ObserveHosts(hostStates(c.Failover))
		}
	}
	v2cfg := v2.Config{BaseURL: payURL, Merchant: merchant, HTTPClient: httpClient, RootCAs: roots, Failover: c.Failover}
	if m != nil {
		v2cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return m.WrapTransportHosts(rt, hostOf) }
	}
	if c.V2, err = v2.NewClient(v2cfg); err != nil {
		return nil, err
	}
	if c.V3, err = v3.NewClient(v3.Config{BaseURL: payURL, Merchant: merchant, HTTPClient: httpClient, Failover: c.Failover}); err != nil {
		return nil, err
	}
	if c.MP, err = mp.NewClient(mp.Config{BaseURL: mpURL, AppID: merchant.AppID, AppSecret: merchant.AppSecret, HTTPClient: httpClient}); err != nil {
		return nil, err
	}
	if c.Pay, err = pay.New(pay.Config{Merchant: merchant, V2: c.V2, V3: c.V3, NotifyBaseURL: s.PublicURL}); err != nil {
		return nil, err
	}
	return c, nil
}

// hostOf is the metrics' host label of a call: the WeChat Pay host failover
// sent it to; "primary" for the hosts without a backup.
func hostOf(r *http.Request) string {
	if role, ok := failover.RoleOf(r.Context()); ok {
		return string(role)
	}
	return string(failover.Primary)
}

// hostStates reads the breakers of h for the metrics.
func hostStates(h *failover.Hosts) func() []metrics.HostState {
	return func() []metrics.HostState {
		var out []metrics.HostState
		for _, st := range h.Status() {
			out = append(out, metrics.HostState{Host: string(st.Role), State: int(st.State), Opened: st.Opened})
		}
		return out
	}
}

// codeBucket is the KV bucket where the authorize worker keeps each code's
// openid; nil (codes are then not remembered) when it cannot be opened.
func codeBucket(ctx context.Context, js jetstream.JetStream) jetstream.KeyValue {
	kv, err := js.KeyValue(ctx, engine.CodeBucket)
	if err != nil {
		return nil
	}
	return kv
}
