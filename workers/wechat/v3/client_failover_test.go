package v3_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestClientFailover: what the primary answers decides whether the call
// goes on to the backup. WeChat's signed answers, errors included, are
// answers; a 5xx that is not WeChat's (no signature, or one that does not
// verify) means the site is down, and the same signed request goes to the
// backup, which checks it as WeChat does.
func TestClientFailover(t *testing.T) {
	tests := []struct {
		name          string
		primary       func(t *testing.T) answer
		wantPrepayID  string
		wantCode      string // the error's code when the primary's answer stands
		wantBackup    int
		wantRetryable bool
	}{
		{name: "a gateway's bare 502", wantPrepayID: "wx-backup", wantBackup: 1,
			primary: func(*testing.T) answer {
				return answer{Status: 502, Body: "bad gateway", Tamper: func(h http.Header, b []byte) []byte { h.Del("Wechatpay-Signature"); return b }}
			}},
		{name: "a 503 signed by a key that is not WeChat's", wantPrepayID: "wx-backup", wantBackup: 1,
			primary: func(t *testing.T) answer {
				return answer{Status: 503, Body: `{"code":"SYSTEM_ERROR","message":"busy"}`, SignKey: mustMerchantKey(t)}
			}},
		{name: "WeChat's signed SYSTEM_ERROR (500)", wantCode: "SYSTEM_ERROR", wantRetryable: true,
			primary: func(*testing.T) answer {
				return answer{Status: 500, Body: `{"code":"SYSTEM_ERROR","message":"busy"}`}
			}},
		{name: "WeChat's signed ORDERPAID (403), a business error", wantCode: "ORDERPAID",
			primary: func(*testing.T) answer { return answer{Status: 403, Body: `{"code":"ORDERPAID","message":"paid"}`} }},
		{name: "WeChat's answer", wantPrepayID: "wx-primary",
			primary: func(*testing.T) answer { return answer{Status: 200, Body: `{"prepay_id":"wx-primary"}`} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary := newFakeWeChat(t, func(*http.Request, []byte) answer { return tt.primary(t) })
			backup := newFakeWeChat(t, func(*http.Request, []byte) answer { return answer{Status: 200, Body: `{"prepay_id":"wx-backup"}`} })
			c := failoverClient(t, primary, backup)
			id, err := c.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "d", OutTradeNo: "T1", TotalFen: 1, OpenID: "o", NotifyURL: "https://shop.example/n"})
			if tt.wantCode == "" && (err != nil || id != tt.wantPrepayID) {
				t.Fatalf("prepay_id %q, err %v; want %q", id, err, tt.wantPrepayID)
			}
			if tt.wantCode != "" && (wechat.CodeOf(err) != tt.wantCode || wechat.IsRetryable(err) != tt.wantRetryable) {
				t.Fatalf("err %v (code %q, retryable %v); want code %s, retryable %v", err, wechat.CodeOf(err), wechat.IsRetryable(err), tt.wantCode, tt.wantRetryable)
			}
			if got := len(backup.requests()); got != tt.wantBackup {
				t.Fatalf("backup received %d requests, want %d", got, tt.wantBackup)
			}
			if tt.wantBackup > 0 {
				p, b := primary.requests()[0], backup.requests()[0]
				if string(p.Body) != string(b.Body) || p.Header.Get("Authorization") != b.Header.Get("Authorization") {
					t.Error("the backup must receive the very request the primary did")
				}
			}
		})
	}
}

// TestClientFailoverQuery: a GET goes to the backup with its path escapes
// and query as signed; when the primary cannot be reached at all the
// backup answers at once.
func TestClientFailoverQuery(t *testing.T) {
	backup := newFakeWeChat(t, func(*http.Request, []byte) answer {
		return answer{Status: 200, Body: `{"out_trade_no":"T/1","trade_state":"SUCCESS"}`}
	})
	primary := newFakeWeChat(t, func(*http.Request, []byte) answer { return answer{Status: 200, Body: `{}`} })
	primary.srv.Close() // the primary's site is gone: its connections are refused
	c := failoverClient(t, primary, backup)
	tx, err := c.QueryByOutTradeNo(context.Background(), "T/1")
	if err != nil || tx.TradeState != "SUCCESS" {
		t.Fatalf("%+v %v", tx, err)
	}
	if uri := backup.requests()[0].RequestURI; !strings.HasPrefix(uri, "/v3/pay/transactions/out-trade-no/T%2F1?mchid=") {
		t.Errorf("backup got %s", uri)
	}
}

// failoverClient is a Client of the vectors' merchant whose primary is one
// fake and backup the other.
func failoverClient(t *testing.T, primary, backup *fakeWeChat) *v3.Client {
	t.Helper()
	hosts, err := failover.New(failover.Config{Primary: primary.srv.URL, Backup: backup.srv.URL, AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v3.NewClient(v3.Config{BaseURL: primary.srv.URL, Merchant: primary.merchant, HTTPClient: &http.Client{Timeout: 5 * time.Second}, Failover: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v3.NewClient(v3.Config{BaseURL: backup.srv.URL, Merchant: primary.merchant, Failover: hosts}); err == nil {
		t.Fatal("a client whose BaseURL is not the failover's primary must be refused")
	}
	return c
}
