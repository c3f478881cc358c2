package mp

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/wxflow/wxflow/workers/wechat"
)

// Scopes of the web OAuth consent page.
const (
	ScopeBase     = "snsapi_base"     // silent, openid only
	ScopeUserInfo = "snsapi_userinfo" // consent screen, allows UserInfo
)

// AuthorizeURL builds the consent page link with the parameters in exactly
// WeChat's order (a reordered link shows "该链接无法访问"), redirect_uri
// URL-encoded, and the mandatory #wechat_redirect. base stands for
// https://open.weixin.qq.com.
func AuthorizeURL(base, appID, redirectURI, scope, state string) string {
	return strings.TrimRight(base, "/") + "/connect/oauth2/authorize?appid=" + url.QueryEscape(appID) +
		"&redirect_uri=" + url.QueryEscape(redirectURI) + "&response_type=code&scope=" + url.QueryEscape(scope) +
		"&state=" + url.QueryEscape(state) + "#wechat_redirect"
}

// OAuthToken is the answer of the code exchange: the user-level token (not
// the global access_token) and, what payments need, the openid.
type OAuthToken struct {
	AccessToken    string        `json:"access_token"`
	ExpiresIn      int           `json:"expires_in"`
	RefreshToken   wechat.Secret `json:"refresh_token"`
	OpenID         string        `json:"openid"`
	Scope          string        `json:"scope"`
	UnionID        string        `json:"unionid"`
	IsSnapshotUser int           `json:"is_snapshotuser"`
}

// ErrSnapshotUser: a Moments snapshot-page virtual user, who cannot pay.
var ErrSnapshotUser = fmt.Errorf("%w: snapshot user (is_snapshotuser=1) cannot pay", wechat.ErrInvalidCode)

// ExchangeCode trades a single-use OAuth code for the user's openid. A used
// or unknown code matches wechat.ErrInvalidCode and must not be retried.
func (c *Client) ExchangeCode(ctx context.Context, code string) (OAuthToken, error) {
	var t OAuthToken
	q := url.Values{"appid": {c.cfg.AppID}, "secret": {string(c.cfg.AppSecret)}, "code": {code}, "grant_type": {"authorization_code"}}
	if err := c.get(ctx, "/sns/oauth2/access_token", q, &t); err != nil {
		return OAuthToken{}, err
	}
	if t.IsSnapshotUser == 1 {
		return OAuthToken{}, ErrSnapshotUser
	}
	if t.OpenID == "" {
		return OAuthToken{}, incomplete("sns/oauth2/access_token", "openid")
	}
	return t, nil
}

// RefreshOAuthToken renews a user-level token with its 30-day refresh_token.
func (c *Client) RefreshOAuthToken(ctx context.Context, refreshToken string) (OAuthToken, error) {
	var t OAuthToken
	q := url.Values{"appid": {c.cfg.AppID}, "grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	err := c.get(ctx, "/sns/oauth2/refresh_token", q, &t)
	return t, err
}

// UserInfo is the profile snsapi_userinfo allows.
type UserInfo struct {
	OpenID     string `json:"openid"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
	UnionID    string `json:"unionid"`
}

// UserInfo reads a user's profile with a user-level token.
func (c *Client) UserInfo(ctx context.Context, oauthAccessToken, openid string) (UserInfo, error) {
	var u UserInfo
	err := c.get(ctx, "/sns/userinfo", url.Values{"access_token": {oauthAccessToken}, "openid": {openid}, "lang": {"zh_CN"}}, &u)
	return u, err
}

// Session is the answer of jscode2session. SessionKey is a secret that never
// leaves the server.
type Session struct {
	OpenID     string        `json:"openid"`
	SessionKey wechat.Secret `json:"session_key"`
	UnionID    string        `json:"unionid"`
}

// JSCode2Session trades a mini-program wx.login code for the openid.
func (c *Client) JSCode2Session(ctx context.Context, jsCode string) (Session, error) {
	var s Session
	q := url.Values{"appid": {c.cfg.AppID}, "secret": {string(c.cfg.AppSecret)}, "js_code": {jsCode}, "grant_type": {"authorization_code"}}
	if err := c.get(ctx, "/sns/jscode2session", q, &s); err != nil {
		return Session{}, err
	}
	if s.OpenID == "" {
		return Session{}, incomplete("sns/jscode2session", "openid")
	}
	return s, nil
}
