package mp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// Config configures a [Client].
type Config struct {
	// BaseURL stands for https://api.weixin.qq.com (or the simulator).
	BaseURL   string
	AppID     string
	AppSecret wechat.Secret
	// HTTPClient makes the calls; one with a 10 s timeout when nil.
	HTTPClient *http.Client
}

// Client calls the platform APIs of one app. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// NewClient checks cfg.
func NewClient(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.AppID == "" || cfg.AppSecret == "" {
		return nil, errors.New("mp: BaseURL, AppID and AppSecret are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{cfg: cfg, http: hc}, nil
}

// apiError is the platform's error shape.
type apiError struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// get calls path with query and decodes the answer into out after checking errcode.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	api := strings.TrimPrefix(path, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+path+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &wechat.Error{API: api, Retryable: ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), Err: withoutQuery(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode >= 500 {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode}
	}
	var e apiError
	if err := json.Unmarshal(raw, &e); err != nil {
		// An answer that ends before its JSON does (empty, or cut short)
		// lost its end on the way: asked again, WeChat answers again (a code
		// it spent answers 40163). Any other that does not read is WeChat's.
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: cutShort(raw),
			Err: fmt.Errorf("%w: %w", wechat.ErrMalformed, err)}
	}
	if e.ErrCode != 0 {
		return &wechat.Error{API: api, Code: strconv.Itoa(e.ErrCode), Message: e.ErrMsg,
			Retryable: e.ErrCode == -1 || e.ErrCode == 45011}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &wechat.Error{API: api, Err: fmt.Errorf("%w: %w", wechat.ErrMalformed, err)}
	}
	return nil
}

// withoutQuery drops the query from the URL a failed call's error quotes:
// the appsecret, codes and access_token travel there, and errors end up in
// logs (found by wxflow verify's secret check after a crash run).
func withoutQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			ue.URL = u.String()
		}
	}
	return err
}

// Token is an access_token or jsapi_ticket with its lifetime.
type Token struct {
	Value     string
	ExpiresIn time.Duration
}

// AccessToken fetches a new global access_token. Every fetch invalidates the
// previous token after a short grace, so only the deployment's one refresher
// may call it (money rule 6).
func (c *Client) AccessToken(ctx context.Context) (Token, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	q := url.Values{"grant_type": {"client_credential"}, "appid": {c.cfg.AppID}, "secret": {string(c.cfg.AppSecret)}}
	if err := c.get(ctx, "/cgi-bin/token", q, &out); err != nil {
		return Token{}, err
	}
	return newToken("cgi-bin/token", out.AccessToken, out.ExpiresIn)
}

// JSAPITicket fetches the JS-SDK ticket with a global access_token.
func (c *Client) JSAPITicket(ctx context.Context, accessToken string) (Token, error) {
	var out struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := c.get(ctx, "/cgi-bin/ticket/getticket", url.Values{"access_token": {accessToken}, "type": {"jsapi"}}, &out); err != nil {
		return Token{}, err
	}
	return newToken("cgi-bin/ticket/getticket", out.Ticket, out.ExpiresIn)
}

// maxTokenLife bounds a token's announced lifetime (WeChat's are 7200 s): a
// larger or non-positive expires_in is a broken answer, not a token to keep.
const maxTokenLife = 7 * 24 * time.Hour

// newToken checks a token answer: a token shared by every process must never
// be empty or live a negative or overflowing time.
func newToken(api, value string, expiresIn int) (Token, error) {
	// Bounded in seconds before the multiplication, which could overflow.
	if value == "" || expiresIn <= 0 || expiresIn > int(maxTokenLife/time.Second) {
		return Token{}, incomplete(api, fmt.Sprintf("token with a lifetime (expires_in %d)", expiresIn))
	}
	return Token{Value: value, ExpiresIn: time.Duration(expiresIn) * time.Second}, nil
}

// incomplete is a 200 answer without what wxflow cannot go on without.
func incomplete(api, what string) error {
	return &wechat.Error{API: api, Err: fmt.Errorf("%w: the answer has no %s", wechat.ErrMalformed, what)}
}

// cutShort reports whether raw ends before its first JSON value does:
// nothing but spaces (io.EOF), or a value left open (io.ErrUnexpectedEOF).
func cutShort(raw []byte) bool {
	var v any
	err := json.NewDecoder(bytes.NewReader(raw)).Decode(&v)
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
