package v2_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// TestClientFailover: a 5xx whose XML is signed with the merchant's API key
// is WeChat's answer and stays with the primary; any other 5xx fails over,
// and the backup gets the same signed request.
func TestClientFailover(t *testing.T) {
	key := wechattest.Load(t).Keys.V2APIKey
	m := &wechat.Merchant{Name: "test", AppID: "wxd678efh567hg6787", MchID: "1900000109", APIKey: wechat.Secret(key)}
	signed := func(signKey string, fields map[string]string) []byte {
		p := map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID, "nonce_str": v2.NonceStr()}
		for k, v := range fields {
			p[k] = v
		}
		p["sign"] = v2.Sign(p, signKey, v2.SignMD5)
		return v2.EncodeXML(p)
	}
	tests := []struct {
		name          string
		status        int
		body          []byte
		wantPrepayID  string
		wantBackup    int64
		wantRetryable bool
	}{
		{name: "a gateway's bare 502", status: 502, body: []byte("bad gateway"), wantPrepayID: "wx-backup", wantBackup: 1},
		{name: "a 500 signed with another key", status: 500, wantPrepayID: "wx-backup", wantBackup: 1,
			body: signed("00000000000000000000000000000000", map[string]string{"result_code": "FAIL", "err_code": "SYSTEMERROR"})},
		{name: "WeChat's signed SYSTEMERROR with a 500", status: 500, wantRetryable: true,
			body: signed(key, map[string]string{"result_code": "FAIL", "err_code": "SYSTEMERROR"})},
		{name: "WeChat's answer", status: 200, wantPrepayID: "wx-primary",
			body: signed(key, map[string]string{"result_code": "SUCCESS", "prepay_id": "wx-primary", "trade_type": "JSAPI"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests [2]atomic.Pointer[[]byte]
			serve := func(i int, status func() int, body func() []byte) *httptest.Server {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					requests[i].Store(&b)
					w.WriteHeader(status())
					w.Write(body())
				}))
				t.Cleanup(srv.Close)
				return srv
			}
			primary := serve(0, func() int { return tt.status }, func() []byte { return tt.body })
			var backupHits atomic.Int64
			backup := serve(1, func() int { backupHits.Add(1); return 200 }, func() []byte {
				return signed(key, map[string]string{"result_code": "SUCCESS", "prepay_id": "wx-backup", "trade_type": "JSAPI"})
			})
			hosts, err := failover.New(failover.Config{Primary: primary.URL, Backup: backup.URL})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v2.NewClient(v2.Config{BaseURL: primary.URL, Merchant: m, HTTPClient: &http.Client{Timeout: 5 * time.Second}, Failover: hosts})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.UnifiedOrder(context.Background(), v2.UnifiedOrderRequest{Body: "b", OutTradeNo: "T1", TotalFen: 1, NotifyURL: "https://shop.example/n", OpenID: "o"})
			if tt.wantPrepayID != "" && (err != nil || got.PrepayID != tt.wantPrepayID) {
				t.Fatalf("%+v %v, want prepay_id %s", got, err, tt.wantPrepayID)
			}
			if tt.wantPrepayID == "" && (err == nil || wechat.IsRetryable(err) != tt.wantRetryable) {
				t.Fatalf("err %v, want a retryable error from the primary", err)
			}
			if backupHits.Load() != tt.wantBackup {
				t.Fatalf("backup received %d calls, want %d", backupHits.Load(), tt.wantBackup)
			}
			if tt.wantBackup > 0 && string(*requests[0].Load()) != string(*requests[1].Load()) {
				t.Error("the backup must receive the very request the primary did")
			}
		})
	}
}
