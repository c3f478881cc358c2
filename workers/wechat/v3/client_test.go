package v3_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// jsonEqual compares two JSON texts as values.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("request body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("request body\n got %s\nwant %s", got, want)
	}
}

func TestClientCalls(t *testing.T) {
	expire := time.Date(2023, 11, 15, 6, 43, 0, 0, time.FixedZone("CST", 8*3600))
	prepay := v3.PrepayRequest{Description: "一杯咖啡", OutTradeNo: "wx-0001", TotalFen: 1250, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		NotifyURL: "https://shop.example/wechat/notify/test/v3/pay", ClientIP: "203.0.113.7", Attach: "a1", TimeExpire: expire}
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *v3.Client) (any, error)
		given    answer
		wantReq  string // method and request URI as sent
		wantBody string // JSON; "" for none
		want     any
	}{
		{
			name:    "JSAPI prepay",
			call:    func(ctx context.Context, c *v3.Client) (any, error) { return c.PrepayJSAPI(ctx, prepay) },
			given:   answer{Status: 200, Body: `{"prepay_id":"wx201410272009395522657a690389285100"}`},
			wantReq: "POST /v3/pay/transactions/jsapi",
			wantBody: `{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"一杯咖啡","out_trade_no":"wx-0001",
				"time_expire":"2023-11-15T06:43:00+08:00","attach":"a1","notify_url":"https://shop.example/wechat/notify/test/v3/pay",
				"amount":{"total":1250,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
				"scene_info":{"payer_client_ip":"203.0.113.7"}}`,
			want: "wx201410272009395522657a690389285100",
		},
		{
			name:    "Native prepay has no payer",
			call:    func(ctx context.Context, c *v3.Client) (any, error) { return c.PrepayNative(ctx, prepay) },
			given:   answer{Status: 200, Body: `{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}`},
			wantReq: "POST /v3/pay/transactions/native",
			wantBody: `{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"一杯咖啡","out_trade_no":"wx-0001",
				"time_expire":"2023-11-15T06:43:00+08:00","attach":"a1","notify_url":"https://shop.example/wechat/notify/test/v3/pay",
				"amount":{"total":1250,"currency":"CNY"},"scene_info":{"payer_client_ip":"203.0.113.7"}}`,
			want: "weixin://wxpay/bizpayurl?pr=abc",
		},
		{
			name: "query escapes the path parameter",
			call: func(ctx context.Context, c *v3.Client) (any, error) { return c.QueryByOutTradeNo(ctx, "a|b/c d") },
			given: answer{Status: 200, Body: `{"appid":"wxd678efh567hg6787","mchid":"1900000109","out_trade_no":"a|b/c d",
				"transaction_id":"4200000001","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功",
				"success_time":"2023-11-15T06:40:00+08:00","payer":{"openid":"o1"},"amount":{"total":1250,"payer_total":1250,"currency":"CNY"}}`},
			wantReq: "GET /v3/pay/transactions/out-trade-no/a%7Cb%2Fc%20d?mchid=1900000109",
			want: v3.Transaction{AppID: "wxd678efh567hg6787", MchID: "1900000109", OutTradeNo: "a|b/c d", TransactionID: "4200000001",
				TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", SuccessTime: "2023-11-15T06:40:00+08:00",
				Payer: v3.Payer{OpenID: "o1"}, Amount: v3.Amount{Total: 1250, PayerTotal: 1250, Currency: "CNY"}},
		},
		{
			name:     "close answers 204 with a signed empty body",
			call:     func(ctx context.Context, c *v3.Client) (any, error) { return nil, c.Close(ctx, "wx-0001") },
			given:    answer{Status: http.StatusNoContent},
			wantReq:  "POST /v3/pay/transactions/out-trade-no/wx-0001/close",
			wantBody: `{"mchid":"1900000109"}`,
		},
		{
			name: "refund",
			call: func(ctx context.Context, c *v3.Client) (any, error) {
				return c.Refund(ctx, v3.RefundRequest{OutTradeNo: "wx-0001", OutRefundNo: "rf-0001", TotalFen: 1250, RefundFen: 250,
					Reason: "缺货", NotifyURL: "https://shop.example/wechat/notify/test/v3/refund"})
			},
			given: answer{Status: 200, Body: `{"refund_id":"5030000001","out_refund_no":"rf-0001","transaction_id":"4200000001",
				"out_trade_no":"wx-0001","channel":"ORIGINAL","status":"PROCESSING","amount":{"total":1250,"refund":250,"currency":"CNY"}}`},
			wantReq: "POST /v3/refund/domestic/refunds",
			wantBody: `{"out_trade_no":"wx-0001","out_refund_no":"rf-0001","reason":"缺货","notify_url":"https://shop.example/wechat/notify/test/v3/refund",
				"amount":{"refund":250,"total":1250,"currency":"CNY"}}`,
			want: v3.Refund{RefundID: "5030000001", OutRefundNo: "rf-0001", TransactionID: "4200000001", OutTradeNo: "wx-0001",
				Status: "PROCESSING", Amount: v3.Amount{Total: 1250, Refund: 250, Currency: "CNY"}},
		},
		{
			name:    "refund query",
			call:    func(ctx context.Context, c *v3.Client) (any, error) { return c.QueryRefund(ctx, "rf-0001") },
			given:   answer{Status: 200, Body: `{"refund_id":"5030000001","out_refund_no":"rf-0001","status":"SUCCESS","amount":{"total":1250,"refund":250}}`},
			wantReq: "GET /v3/refund/domestic/refunds/rf-0001",
			want:    v3.Refund{RefundID: "5030000001", OutRefundNo: "rf-0001", Status: "SUCCESS", Amount: v3.Amount{Total: 1250, Refund: 250}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWeChat(t, func(*http.Request, []byte) answer { return tc.given })
			got, err := tc.call(t.Context(), f.client(t))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) && tc.want != nil {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if r := reqs[0].Method + " " + reqs[0].RequestURI; r != tc.wantReq {
				t.Errorf("request %q, want %q", r, tc.wantReq)
			}
			if tc.wantBody == "" {
				if len(reqs[0].Body) != 0 {
					t.Errorf("request body %q, want none", reqs[0].Body)
				}
				return
			}
			jsonEqual(t, reqs[0].Body, tc.wantBody)
		})
	}
}

func TestClientSignsEachRequestAfresh(t *testing.T) {
	f := newFakeWeChat(t, func(*http.Request, []byte) answer { return answer{Status: 200, Body: `{"prepay_id":"wx1"}`} })
	c := f.client(t)
	for range 2 {
		if _, err := c.PrepayJSAPI(t.Context(), v3.PrepayRequest{OutTradeNo: "wx-0002", TotalFen: 1, OpenID: "o"}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.requests()
	if a, b := reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"); a == b {
		t.Errorf("two calls carry the same Authorization (nonce reused): %s", a)
	}
}
