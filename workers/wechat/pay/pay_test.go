package pay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestFrontEndShapes: the same signature in the exact key casing each front end wants.
func TestFrontEndShapes(t *testing.T) {
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := keys.Merchant
	c2, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	c3, _ := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	p, err := pay.New(pay.Config{Merchant: m, V2: c2, V3: c3, NotifyBaseURL: "https://shop.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.NotifyURL("v3", "refund"); got != "https://shop.example/wechat/notify/default/v3/refund" {
		t.Errorf("notify URL %s", got)
	}
	now := time.Unix(1700000000, 0)
	for _, api := range []string{"v2", "v3"} {
		f, err := p.PayParams(api, "", "wx123", now)
		if err != nil {
			t.Fatal(err)
		}
		b := f.Bridge
		if b["appId"] != m.AppID || b["timeStamp"] != "1700000000" || b["package"] != "prepay_id=wx123" || b["paySign"] == "" {
			t.Errorf("%s bridge: %v", api, b)
		}
		if _, has := f.ChooseWXPay["appId"]; has || f.ChooseWXPay["timestamp"] != "1700000000" || f.ChooseWXPay["timeStamp"] != "" {
			t.Errorf("%s chooseWXPay must have timestamp (lower-case s) and no appId: %v", api, f.ChooseWXPay)
		}
		if _, has := f.RequestPayment["appId"]; has || f.RequestPayment["timeStamp"] != "1700000000" {
			t.Errorf("%s requestPayment: %v", api, f.RequestPayment)
		}
		if f.ChooseWXPay["paySign"] != b["paySign"] || f.RequestPayment["paySign"] != b["paySign"] {
			t.Errorf("%s: the three shapes must carry one signature", api)
		}
		switch api {
		case "v2":
			signed := map[string]string{"appId": b["appId"], "timeStamp": b["timeStamp"], "nonceStr": b["nonceStr"],
				"package": b["package"], "signType": b["signType"], "sign": b["paySign"]}
			if err := v2.Verify(signed, string(m.APIKey)); err != nil {
				t.Errorf("v2 paySign does not verify: %v", err)
			}
		case "v3":
			if b["signType"] != "RSA" || !strings.HasSuffix(b["paySign"], "=") && len(b["paySign"]) < 300 {
				t.Errorf("v3 pay params: %v", b)
			}
		}
	}
	if _, err := p.PayParams("v4", "", "wx", now); err == nil {
		t.Error("an unknown API was accepted")
	}
}
