package stack

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/metrics"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// WechatClients are the WeChat clients of every merchant of the deployment
// (the registry in MerchantDir), sharing one HTTP transport (kept-alive
// connections: a TLS handshake per call would cost more than the call) and
// WeChat Pay's failover hosts.
type WechatClients struct {
	// Registry is every merchant configured, the broken ones with why.
	Registry *wechat.Registry
	// Merchants are the clients of each merchant that loaded, the default
	// merchant (Settings.MerchantName, else the first by name) first.
	Merchants []*MerchantClients
	// Platform are the platform clients (tokens, OAuth, jscode2session) of
	// every app of every merchant and provider, by appid.
	Platform map[string]*mp.Client
	// Failover is WeChat Pay's two hosts and their breakers, shared by
	// every pay client; nil when there is no backup (Settings.WechatPayBackup).
	Failover *failover.Hosts
}

// MerchantClients are one merchant's pay clients.
type MerchantClients struct {
	Merchant *wechat.Merchant
	V2       *v2.Client
	V3       *v3.Client
	Pay      *pay.Payments
}

// Default is the default merchant's clients: what a shop that names no
// merchant gets, and the merchant of single-merchant commands.
func (c *WechatClients) Default() *MerchantClients { return c.Merchants[0] }

// NewWechatClients loads the merchants of MerchantDir (wechat.LoadRegistry:
// a folder of merchant folders, or one merchant's folder named
// MerchantName) and builds their clients, pointed at WeChat's hosts or at
// WechatURL (the simulator). A merchant whose configuration is broken is
// logged and left out: its orders fail with a flag, the others go on; no
// merchant at all is an error. The pay clients fail over to WeChat Pay's
// backup host when there is one (Settings.WechatPayBackup). Every call is
// counted and timed by m when it is not nil, with the host that served it.
func NewWechatClients(s *Settings, m *metrics.Metrics) (*WechatClients, error) {
	reg, err := wechat.LoadRegistry(s.MerchantDir, s.MerchantName)
	if err != nil {
		return nil, fmt.Errorf("merchants in %s: %w", s.MerchantDir, err)
	}
	for name, err := range reg.Broken() {
		s.Logger().Error("merchant misconfigured: its orders fail until it is fixed (wxflow merchant check)", "merchant", name, "err", err)
	}
	if len(reg.Names()) == 0 {
		return nil, fmt.Errorf("merchants in %s: none usable (wxflow merchant check says why)", s.MerchantDir)
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
	c := &WechatClients{Registry: reg, Platform: map[string]*mp.Client{}}
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
	for _, app := range reg.Apps() {
		pc, err := mp.NewClient(mp.Config{BaseURL: mpURL, AppID: app.AppID, AppSecret: app.AppSecret, HTTPClient: httpClient})
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", app.AppID, err)
		}
		c.Platform[app.AppID] = pc
	}
	names := reg.Names()
	if i := slices.Index(names, s.MerchantName); i > 0 {
		names = append([]string{s.MerchantName}, slices.Delete(names, i, i+1)...)
	}
	for _, name := range names {
		merchant, _ := reg.Merchant(name)
		mc := &MerchantClients{Merchant: merchant}
		v2cfg := v2.Config{BaseURL: payURL, Merchant: merchant, HTTPClient: httpClient, RootCAs: roots, Failover: c.Failover}
		if m != nil {
			v2cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return m.WrapTransportHosts(rt, hostOf) }
		}
		if mc.V2, err = v2.NewClient(v2cfg); err != nil {
			return nil, fmt.Errorf("merchant %s: %w", name, err)
		}
		if mc.V3, err = v3.NewClient(v3.Config{BaseURL: payURL, Merchant: merchant, HTTPClient: httpClient, Failover: c.Failover}); err != nil {
			return nil, fmt.Errorf("merchant %s: %w", name, err)
		}
		if mc.Pay, err = pay.New(pay.Config{Merchant: merchant, V2: mc.V2, V3: mc.V3, NotifyBaseURL: s.PublicURL}); err != nil {
			return nil, fmt.Errorf("merchant %s: %w", name, err)
		}
		c.Merchants = append(c.Merchants, mc)
	}
	return c, nil
}

// Workers are the merchants as the event workers see them.
func (c *WechatClients) Workers() *workers.MerchantSet {
	set := &workers.MerchantSet{ByName: map[string]*workers.Merchant{}, Broken: c.Registry.Broken()}
	for _, mc := range c.Merchants {
		apps := map[string]*mp.Client{}
		for _, a := range append(mc.Merchant.OwnApps(), mc.Merchant.SpApps...) {
			apps[a.AppID] = c.Platform[a.AppID]
		}
		set.ByName[mc.Merchant.Name] = &workers.Merchant{Merchant: mc.Merchant, Payments: mc.Pay, Apps: apps}
	}
	return set
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
