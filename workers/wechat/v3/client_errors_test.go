package v3_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// TestClientErrors covers what a worker branches on: which answers are
// refused as forged (final, wrapping wechat.ErrSignature), which WeChat
// errors are worth retrying with the same parameters, and which are final.
func TestClientErrors(t *testing.T) {
	ok := `{"prepay_id":"wx1"}`
	tests := []struct {
		name          string
		given         answer
		wantErr       error // errors.Is target; every case also must be a *wechat.Error
		wantCode      string
		wantRetryable bool
	}{
		{
			name: "tampered body",
			given: answer{Status: 200, Body: ok, Tamper: func(_ http.Header, b []byte) []byte {
				return []byte(`{"prepay_id":"wx2"}`)
			}},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name:    "stale timestamp (exactly 300 s old)",
			given:   answer{Status: 200, Body: ok, SignedAt: time.Now().Add(-v3.MaxSkew)},
			wantErr: wechat.ErrStale, wantCode: "SIGN_ERROR",
		},
		{
			name:    "timestamp 10 min ahead is stale, a bad signature too",
			given:   answer{Status: 200, Body: ok, SignedAt: time.Now().Add(10 * time.Minute)},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name:    "unknown Wechatpay-Serial",
			given:   answer{Status: 200, Body: ok, Serial: "PUB_KEY_ID_00000000000000000000000000000002"},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name:    "right serial, signed by another key",
			given:   answer{Status: 200, Body: ok, SignKey: mustMerchantKey(t)},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name: "probe signature WECHATPAY/SIGNTEST/",
			given: answer{Status: 200, Body: ok, Tamper: func(h http.Header, b []byte) []byte {
				h.Set("Wechatpay-Signature", v3.SignTestPrefix+h.Get("Wechatpay-Signature"))
				return b
			}},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name: "no signature headers",
			given: answer{Status: 200, Body: ok, Tamper: func(h http.Header, b []byte) []byte {
				for k := range h {
					delete(h, k)
				}
				return b
			}},
			wantErr: wechat.ErrSignature, wantCode: "SIGN_ERROR",
		},
		{
			name:    "signed but not JSON",
			given:   answer{Status: 200, Body: `<xml/>`},
			wantErr: wechat.ErrMalformed,
		},
		{
			name:          "500 SYSTEM_ERROR",
			given:         answer{Status: 500, Body: `{"code":"SYSTEM_ERROR","message":"系统错误"}`},
			wantCode:      "SYSTEM_ERROR",
			wantRetryable: true,
		},
		{
			name:          "502 from a gateway, no JSON",
			given:         answer{Status: 502, Body: `<html>Bad Gateway</html>`},
			wantRetryable: true,
		},
		{
			name:          "429 FREQUENCY_LIMITED",
			given:         answer{Status: 429, Body: `{"code":"FREQUENCY_LIMITED","message":"频率超限"}`},
			wantCode:      "FREQUENCY_LIMITED",
			wantRetryable: true,
		},
		{
			name:          "SYSTEM_ERROR under a 4xx status is still retryable (code first)",
			given:         answer{Status: 400, Body: `{"code":"SYSTEM_ERROR","message":"系统错误"}`},
			wantCode:      "SYSTEM_ERROR",
			wantRetryable: true,
		},
		{
			name:     "400 PARAM_ERROR",
			given:    answer{Status: 400, Body: `{"code":"PARAM_ERROR","message":"appid和openid不匹配"}`},
			wantCode: "PARAM_ERROR",
		},
		{
			name:     "403 OUT_TRADE_NO_USED",
			given:    answer{Status: 403, Body: `{"code":"OUT_TRADE_NO_USED","message":"商户订单号重复"}`},
			wantCode: "OUT_TRADE_NO_USED",
		},
		{
			name:     "400 ORDERPAID",
			given:    answer{Status: 400, Body: `{"code":"ORDERPAID","message":"该订单已支付"}`},
			wantErr:  wechat.ErrOrderPaid,
			wantCode: "ORDERPAID",
		},
		{
			name:     "404 ORDER_NOT_EXIST",
			given:    answer{Status: 404, Body: `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`},
			wantErr:  wechat.ErrOrderNotExist,
			wantCode: "ORDER_NOT_EXIST",
		},
		{
			name: "404 ORDER_NOT_EXIST whose signature does not verify is not acted on",
			given: answer{Status: 404, Body: `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`, Tamper: func(_ http.Header, b []byte) []byte {
				return []byte(`{"code":"ORDERPAID","message":"该订单已支付"}`)
			}},
			wantErr:       wechat.ErrSignature,
			wantRetryable: true,
		},
		{
			name: "forged 400 ORDERPAID without signature headers is not acted on",
			given: answer{Status: 400, Body: `{"code":"ORDERPAID","message":"该订单已支付"}`, Tamper: func(h http.Header, b []byte) []byte {
				for k := range h {
					delete(h, k)
				}
				return b
			}},
			wantErr:       wechat.ErrSignature,
			wantRetryable: true,
		},
		{
			name:          "403 NOT_ENOUGH signed by another key is not acted on",
			given:         answer{Status: 403, Body: `{"code":"NOT_ENOUGH","message":"余额不足"}`, SignKey: mustMerchantKey(t)},
			wantErr:       wechat.ErrSignature,
			wantRetryable: true,
		},
		{
			name:          "404 RESOURCE_NOT_EXISTS from an unknown Wechatpay-Serial is not acted on",
			given:         answer{Status: 404, Body: `{"code":"RESOURCE_NOT_EXISTS","message":"退款单不存在"}`, Serial: "PUB_KEY_ID_00000000000000000000000000000002"},
			wantErr:       wechat.ErrSignature,
			wantRetryable: true,
		},
		{
			name:     "403 NOT_ENOUGH signed by WeChat",
			given:    answer{Status: 403, Body: `{"code":"NOT_ENOUGH","message":"余额不足"}`},
			wantCode: "NOT_ENOUGH",
		},
		{
			name:     "401 SIGN_ERROR from WeChat",
			given:    answer{Status: 401, Body: `{"code":"SIGN_ERROR","message":"签名错误"}`},
			wantErr:  wechat.ErrSignature,
			wantCode: "SIGN_ERROR",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWeChat(t, func(*http.Request, []byte) answer { return tc.given })
			_, err := f.client(t).PrepayJSAPI(t.Context(), v3.PrepayRequest{OutTradeNo: "wx-0003", TotalFen: 1, OpenID: "o"})
			if err == nil {
				t.Fatal("err = nil")
			}
			we, ok := errors.AsType[*wechat.Error](err)
			if !ok {
				t.Fatalf("err = %T %v, want a *wechat.Error", err, err)
			}
			if we.API != "v3/pay/transactions/jsapi" || we.HTTPStatus != tc.given.Status {
				t.Errorf("API %q status %d, want v3/pay/transactions/jsapi %d", we.API, we.HTTPStatus, tc.given.Status)
			}
			if tc.wantRetryable && (errors.Is(err, wechat.ErrOrderPaid) || errors.Is(err, wechat.ErrOrderNotExist) || errors.Is(err, wechat.ErrOrderClosed)) {
				t.Errorf("err = %v: a retried answer must not match a code a worker acts on", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want one matching %v", err, tc.wantErr)
			}
			if we.Code != tc.wantCode {
				t.Errorf("code %q, want %q", we.Code, tc.wantCode)
			}
			if we.Retryable != tc.wantRetryable || wechat.IsRetryable(err) != tc.wantRetryable {
				t.Errorf("retryable %v / IsRetryable %v, want %v (%v)", we.Retryable, wechat.IsRetryable(err), tc.wantRetryable, err)
			}
		})
	}
}

// TestClientTransportErrors: no answer at all is retryable, unless the
// caller gave up.
func TestClientTransportErrors(t *testing.T) {
	tests := []struct {
		name          string
		given         func(t *testing.T) (*v3.Client, context.Context)
		wantRetryable bool
	}{
		{
			name: "connection refused",
			given: func(t *testing.T) (*v3.Client, context.Context) {
				f := newFakeWeChat(t, nil)
				c := f.client(t)
				f.srv.Close()
				return c, t.Context()
			},
			wantRetryable: true,
		},
		{
			name: "deadline while WeChat is slow",
			given: func(t *testing.T) (*v3.Client, context.Context) {
				// Closed before the server's own cleanup, so a handler that
				// missed the cancellation cannot hold srv.Close up.
				blocked := make(chan struct{})
				f := newFakeWeChat(t, func(r *http.Request, _ []byte) answer {
					select {
					case <-r.Context().Done():
					case <-blocked:
					}
					return answer{Status: 200, Body: `{}`}
				})
				t.Cleanup(func() { close(blocked) })
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return f.client(t), ctx
			},
			wantRetryable: true,
		},
		{
			name: "caller cancelled",
			given: func(t *testing.T) (*v3.Client, context.Context) {
				f := newFakeWeChat(t, nil)
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return f.client(t), ctx
			},
			wantRetryable: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ctx := tc.given(t)
			err := c.Close(ctx, "wx-0004")
			if err == nil {
				t.Fatal("err = nil")
			}
			if _, ok := errors.AsType[*wechat.Error](err); !ok {
				t.Errorf("err = %T, want a *wechat.Error", err)
			}
			if got := wechat.IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable = %v, want %v (%v)", got, tc.wantRetryable, err)
			}
		})
	}
}

// mustMerchantKey is a valid RSA key that is not WeChat's.
func mustMerchantKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	return testMerchant(t, wechattest.Load(t)).PrivateKey
}
