package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// JSSDKConfig is the object a page passes to wx.config (with the jsApiList
// it uses), signed for one page URL.
type JSSDKConfig struct {
	AppID     string `json:"appId"`
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// JSSDKConfig signs wx.config for the page at pageURL (GET
// /v1/jssdk/config), which must be on one of the deployment's app domains
// (WXFLOW_APP_DOMAINS); the part after '#' is not signed. Your server calls
// it and hands the config to the page.
func (c *Client) JSSDKConfig(ctx context.Context, pageURL string) (JSSDKConfig, error) {
	k := call{method: http.MethodGet, path: "/v1/jssdk/config", query: url.Values{"url": {pageURL}}, safe: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return JSSDKConfig{}, err
	}
	var cfg JSSDKConfig
	return cfg, decode(k, a, &cfg)
}

// OAuthScope is what WeChat's OAuth page asks the payer.
type OAuthScope string

// The OAuth scopes.
const (
	// ScopeBase gives the openid without asking the payer: the default.
	ScopeBase OAuthScope = "snsapi_base"
	// ScopeUserInfo asks the payer's consent for their profile too.
	ScopeUserInfo OAuthScope = "snsapi_userinfo"
)

// OAuthRequest is what [Client.OAuthURL] asks for.
type OAuthRequest struct {
	// RedirectURI is the page WeChat brings the payer back to, with
	// ?code=…&state=…; it must be on one of the deployment's app domains.
	RedirectURI string
	// Scope is ScopeBase when empty.
	Scope OAuthScope
	// State comes back with the code: at most 128 letters and digits.
	State string
}

// OAuthURL is the address of WeChat's OAuth page for the shop's Official
// Account (GET /v1/oauth/authorize, whose redirect is not followed). Send
// the payer's browser there; WeChat brings them back to r.RedirectURI with
// a code, which [PayerOAuthCode] turns into the payer of an order.
func (c *Client) OAuthURL(ctx context.Context, r OAuthRequest) (string, error) {
	q := url.Values{"redirect_uri": {r.RedirectURI}}
	if r.Scope != "" {
		q.Set("scope", string(r.Scope))
	}
	if r.State != "" {
		q.Set("state", r.State)
	}
	k := call{method: http.MethodGet, path: "/v1/oauth/authorize", query: q, safe: true, noRedirect: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return "", err
	}
	loc := a.header.Get("Location")
	if a.status != http.StatusFound || loc == "" {
		return "", fmt.Errorf("client: GET /v1/oauth/authorize: HTTP %d without a redirect", a.status)
	}
	return loc, nil
}
