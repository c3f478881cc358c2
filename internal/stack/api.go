package stack

import (
	"fmt"
	"strings"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/workers/tokens"
	"golang.org/x/time/rate"
)

// NewAPI builds the API process's part: on its public listener WeChat's
// notification endpoints; on its internal one the shop API (keys checked
// under the server secret, page URLs on s.AppDomains), the admin page and
// API (when s.AdminToken is set) and /metrics.
// OAuth redirects go to WeChat's OAuth host, or to WechatURL (the simulator).
func NewAPI(s *Settings, c *Conns, wc *WechatClients) (*api.Server, error) {
	deadlines, err := s.Deadlines()
	if err != nil {
		return nil, err
	}
	secret, err := s.ServerSecret()
	if err != nil {
		return nil, err
	}
	_, _, oauth := s.WechatHosts()
	tickets := func(appid string) api.TicketSource { return &tokens.Reader{AppID: appid, NC: c.NC, JS: c.JS} }
	var merchants []api.Merchant
	for _, mc := range wc.Merchants {
		merchants = append(merchants, api.Merchant{Merchant: mc.Merchant, V2: mc.V2, V3: mc.V3, Tickets: tickets})
	}
	cfg := api.Config{Merchants: merchants, Broken: wc.Registry.Broken(), Store: c.Store, NC: c.NC, JS: c.JS, OAuthBaseURL: oauth, Logger: c.Log,
		AdminToken: s.AdminToken, Deadlines: deadlines, Secret: secret, AppDomains: s.AppDomainList(),
		Edges: api.Edges{Rate: rate.Limit(s.PublicRate), Burst: int(min(2*s.PublicRate, 1e6))}, InternalRate: rate.Limit(s.ShopRate),
		// The admin cookie is Secure behind an https public URL; the admin
		// page's forms come from the internal listener (or through a proxy
		// from the public URL).
		SecureCookies: strings.HasPrefix(s.PublicURL, "https://"),
		AdminOrigins:  []string{s.PublicURL, "http://" + s.HTTPAddr}}
	cfg.WebhookAllowPrivate = s.WebhookAllowPrivate
	if c.Metrics != nil {
		cfg.Responses, cfg.MetricsHandler = c.Metrics, c.Metrics.Handler()
	}
	srv, err := api.New(cfg)
	if err != nil {
		return nil, err
	}
	if c.Metrics != nil {
		c.Metrics.ObserveDeployment(c.Store, c.JS, srv)
		c.Metrics.ObserveBooks(c.Store)
	}
	return srv, nil
}

// CheckAdminToken refuses a WXFLOW_ADMIN_TOKEN that [api.New] would refuse
// (a token shorter than api.MinAdminTokenBytes, malformed NAME=TOKEN pairs),
// so `wxflow api` and `wxflow dev` say so before connecting to anything. An
// empty token passes: the admin side is then off, or dev makes one.
func CheckAdminToken(s *Settings) error {
	if err := api.CheckAdminTokens(s.AdminToken); err != nil {
		return fmt.Errorf("%w: WXFLOW_ADMIN_TOKEN: %w", ErrInvalid, err)
	}
	return nil
}
