package stack

import (
	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/workers/tokens"
)

// NewAPI builds the API process's part: the shop API (keys checked under the
// server secret, page URLs on s.AppDomains), WeChat's notification
// endpoints, the admin page and API (when s.AdminToken is set) and /metrics.
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
	cfg := api.Config{Merchant: wc.Merchant, Store: c.Store, NC: c.NC, JS: c.JS, V2: wc.V2, V3: wc.V3,
		Tickets: &tokens.Reader{AppID: wc.Merchant.AppID, NC: c.NC, JS: c.JS}, OAuthBaseURL: oauth, Logger: c.Log,
		AdminToken: s.AdminToken, Deadlines: deadlines, Secret: secret, AppDomains: s.AppDomainList()}
	if c.Metrics != nil {
		cfg.Responses, cfg.MetricsHandler = c.Metrics, c.Metrics.Handler()
	}
	srv, err := api.New(cfg)
	if err != nil {
		return nil, err
	}
	if c.Metrics != nil {
		c.Metrics.ObserveDeployment(c.Store, c.JS, srv)
	}
	return srv, nil
}
