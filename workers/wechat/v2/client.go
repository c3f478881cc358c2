package v2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// Config configures a v2 [Client].
type Config struct {
	// BaseURL stands for https://api.mch.weixin.qq.com (or the simulator).
	BaseURL string
	// Merchant holds the API key and, for refunds, the client certificate.
	Merchant *wechat.Merchant
	// HTTPClient makes every call but refunds; a client with a 10 s timeout when nil.
	HTTPClient *http.Client
	// SignType signs requests; MD5 when empty.
	SignType SignType
	// RootCAs are the roots the mutual-TLS refund client trusts; the system's when nil.
	RootCAs *x509.CertPool
	// WrapTransport, when set, wraps the mutual-TLS client's transport (metrics, tracing).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Failover, when set, sends a call (refunds too) to WeChat Pay's backup
	// host when the primary fails to answer (package failover); its primary
	// must be BaseURL. A 5xx whose XML is signed with the API key stays an
	// answer. None when nil.
	Failover *failover.Hosts
}

// Client calls WeChat Pay API v2 for one merchant. It is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	tlsHTTP *http.Client // with the merchant client certificate, for /secapi/
}

// NewClient checks cfg and builds the two HTTP clients v2 needs.
func NewClient(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.Merchant == nil {
		return nil, errors.New("v2: BaseURL and Merchant are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.SignType == "" {
		cfg.SignType = SignMD5
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Failover != nil {
		if !cfg.Failover.Serves(cfg.BaseURL) {
			return nil, fmt.Errorf("v2: the failover's primary is not BaseURL %s", cfg.BaseURL)
		}
		wrapped := *c.http
		wrapped.Transport = cfg.Failover.Transport(c.http.Transport, c.signedAnswer)
		c.http = &wrapped
	}
	if cfg.Merchant.Certificate != nil {
		var rt http.RoundTripper = &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      cfg.RootCAs,
			Certificates: []tls.Certificate{*cfg.Merchant.Certificate},
			MinVersion:   tls.VersionTLS12,
		}, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
		if cfg.WrapTransport != nil {
			rt = cfg.WrapTransport(rt)
		}
		if cfg.Failover != nil {
			rt = cfg.Failover.Transport(rt, c.signedAnswer)
		}
		c.tlsHTTP = &http.Client{Timeout: c.http.Timeout, Transport: rt}
	}
	return c, nil
}

// signedAnswer reports whether a 5xx body is WeChat's own answer: XML
// signed with the merchant's API key. WeChat answers v2 calls with 200, so a
// 5xx is almost always a gateway's and fails over (package failover).
func (c *Client) signedAnswer(_ http.Header, body []byte) bool {
	out, err := ParseXML(body)
	return err == nil && Verify(out, string(c.cfg.Merchant.APIKey)) == nil
}

// call signs params, posts them to path and returns the verified response
// fields. return_code=FAIL and result_code=FAIL become *wechat.Error.
// It names the merchant: appid (when params has none: the merchant's AppID,
// or a sub-merchant's provider's first app), mch_id, and a sub-merchant's
// sub_mch_id; empty fields are left out.
func (c *Client) call(ctx context.Context, path string, params map[string]string, mutualTLS bool) (map[string]string, error) {
	m := c.cfg.Merchant
	if params["appid"] == "" {
		params["appid"] = m.AppID
		if m.Partner() {
			params["appid"] = m.SpAppID()
		}
	}
	params["mch_id"] = m.MchID
	params["sub_mch_id"] = m.SubMchID
	for k, v := range params {
		if v == "" {
			delete(params, k)
		}
	}
	params["nonce_str"] = NonceStr()
	if c.cfg.SignType != SignMD5 {
		params["sign_type"] = string(c.cfg.SignType)
	}
	params["sign"] = Sign(params, string(m.APIKey), c.cfg.SignType)
	api := strings.TrimPrefix(path, "/")
	hc := c.http
	if mutualTLS {
		if c.tlsHTTP == nil {
			return nil, &wechat.Error{API: api, Message: "merchant client certificate not configured"}
		}
		hc = c.tlsHTTP
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+path, bytes.NewReader(EncodeXML(params)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &wechat.Error{API: api, Retryable: ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxXMLBytes+1))
	if err != nil {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true, Err: err}
	}
	if resp.StatusCode >= 500 {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Message: string(bytes.TrimSpace(body))}
	}
	out, err := ParseXML(body)
	if err != nil {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Err: err}
	}
	if out["return_code"] != "SUCCESS" {
		e := &wechat.Error{API: api, Code: "FAIL", Message: out["return_msg"]}
		if strings.HasPrefix(out["return_msg"], "签名错误") {
			// WeChat could not verify the request's sign: the merchant's
			// API key is not the one WeChat holds (a configuration error).
			e.Err = wechat.ErrSignature
		}
		return nil, e
	}
	if err := Verify(out, string(m.APIKey)); err != nil {
		return nil, &wechat.Error{API: api, Code: "SIGNERROR", Message: "response signature", Err: err}
	}
	if err := owns(m, out["appid"], out["mch_id"], out["sub_appid"], out["sub_mch_id"], true); err != nil {
		return nil, &wechat.Error{API: api, Code: "FOREIGN", Message: "response for another appid or mch_id", Err: fmt.Errorf("%w: %w", wechat.ErrSignature, err)}
	}
	if out["result_code"] == "FAIL" {
		code := out["err_code"]
		return nil, &wechat.Error{API: api, Code: code, Message: out["err_code_des"], Retryable: retryableCode(code)}
	}
	return out, nil
}

// retryableCode says which of v2's error codes (err_code) are worth the same call again.
func retryableCode(code string) bool {
	switch code {
	case "SYSTEMERROR", "BIZERR_NEED_RETRY", "INVALID_REQ_TOO_MUCH", "FREQUENCY_LIMITED", "USERPAYING":
		return true
	}
	return false
}

// beijing is WeChat's clock for yyyyMMddHHmmss times.
var beijing = time.FixedZone("CST", 8*3600)

// FormatTime writes t as WeChat v2 does: yyyyMMddHHmmss, Beijing time.
func FormatTime(t time.Time) string { return t.In(beijing).Format("20060102150405") }

// ParseTime reads a v2 yyyyMMddHHmmss time (Beijing time).
func ParseTime(s string) (time.Time, error) {
	return time.ParseInLocation("20060102150405", s, beijing)
}

// parseFen reads an amount in fen; errors wrap wechat.ErrMalformed.
func parseFen(field, s string) (int64, error) {
	// Decimal digits only: Sscan would read "1.5" as 1, "0x64" as 100 and
	// "010" as 8, and an amount must never be a guess.
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || s[0] == '+' || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: %s=%q is not an amount in fen", wechat.ErrMalformed, field, s)
	}
	return n, nil
}
