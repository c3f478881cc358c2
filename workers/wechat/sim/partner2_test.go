package sim_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

func TestDirectAndPartnerValidation(t *testing.T) {
	mu := startMulti(t, t.TempDir(), "")
	def, sec, prov, sub1 := mu.m(t, "default"), mu.m(t, "second"), mu.m(t, "provider"), mu.m(t, "provider-sub1")
	defOA, secOA, provOA := appOf(t, def, wechat.AppOfficialAccount), appOf(t, sec, wechat.AppOfficialAccount), appOf(t, prov, wechat.AppOfficialAccount)
	sub1Mini := appOf(t, sub1, wechat.AppMiniProgram)
	_, inDef := mu.issue(t, "/sim/oauth/code", defOA, "bob")
	_, inSec := mu.issue(t, "/sim/oauth/code", secOA, "bob")
	_, inProv := mu.issue(t, "/sim/oauth/code", provOA, "bob")
	_, inSub1 := mu.issue(t, "/sim/login", sub1Mini, "bob")
	notify := "https://shop.example/n"
	direct := func(appid, mchid, openid string, extra map[string]any) map[string]any {
		b := map[string]any{"appid": appid, "mchid": mchid, "description": "d", "out_trade_no": "V-" + v3.NonceStr()[:10],
			"notify_url": notify, "amount": map[string]any{"total": 1}, "payer": map[string]any{"openid": openid}}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	partner := func(edit func(b map[string]any)) map[string]any {
		b := map[string]any{"sp_appid": provOA, "sp_mchid": prov.MchID, "sub_mchid": sub1.SubMchID, "description": "d",
			"out_trade_no": "P-" + v3.NonceStr()[:10], "notify_url": notify, "amount": map[string]any{"total": 1},
			"payer": map[string]any{"sp_openid": inProv}}
		if edit != nil {
			edit(b)
		}
		return b
	}
	const directPath, partnerPath = "/v3/pay/transactions/jsapi", "/v3/pay/partner/transactions/jsapi"
	for _, c := range []struct {
		name         string
		signer, key  *wechat.Merchant
		path         string
		body         map[string]any
		status       int
		code, msgHas string
	}{
		{"direct, all good", def, def, directPath, direct(defOA, def.MchID, inDef, nil), 200, "", ""},
		{"signed with another merchant's key", sec, def, directPath, direct(secOA, sec.MchID, inSec, nil), 401, "SIGN_ERROR", ""},
		{"appid of another merchant", def, def, directPath, direct(secOA, def.MchID, inSec, nil), 400, "APPID_MCHID_NOT_MATCH", ""},
		{"openid of another app", def, def, directPath, direct(defOA, def.MchID, inSec, nil), 400, "PARAM_ERROR", "appid和openid不匹配"},
		{"provider on a direct API", prov, prov, directPath, direct(provOA, prov.MchID, inProv, nil), 400, "PARAM_ERROR", "受理机构必须传入sub_mch_id"},
		{"direct with sub_mchid", def, def, directPath, direct(defOA, def.MchID, inDef, map[string]any{"sub_mchid": sub1.SubMchID}), 400, "PARAM_ERROR", "普通商户不允许传sub_mch_id"},
		{"partner, sp_openid, all good", prov, prov, partnerPath, partner(nil), 200, "", ""},
		{"partner, sub_openid, all good", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["sub_appid"], b["payer"] = sub1Mini, map[string]any{"sub_openid": inSub1}
		}), 200, "", ""},
		{"partner, wrong key", prov, sec, partnerPath, partner(nil), 401, "SIGN_ERROR", ""},
		{"partner, payer.openid", prov, prov, partnerPath, partner(func(b map[string]any) { b["payer"] = map[string]any{"openid": inProv} }), 400, "PARAM_ERROR", "未在API文档中定义"},
		{"partner, appid instead of sp_appid", prov, prov, partnerPath, partner(func(b map[string]any) { b["appid"] = provOA }), 400, "PARAM_ERROR", "未在API文档中定义"},
		{"partner, no sp_appid", prov, prov, partnerPath, partner(func(b map[string]any) { delete(b, "sp_appid") }), 400, "PARAM_ERROR", "/body/sp_appid"},
		{"partner, no sub_mchid", prov, prov, partnerPath, partner(func(b map[string]any) { delete(b, "sub_mchid") }), 400, "PARAM_ERROR", "/body/sub_mchid"},
		{"partner, no payer", prov, prov, partnerPath, partner(func(b map[string]any) { delete(b, "payer") }), 400, "PARAM_ERROR", "/body/payer"},
		{"partner, one openid twice", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["sub_appid"], b["payer"] = sub1Mini, map[string]any{"sp_openid": inSub1, "sub_openid": inSub1}
		}), 400, "PARAM_ERROR", "appid和openid不匹配"},
		{"partner, both openids", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["sub_appid"], b["payer"] = sub1Mini, map[string]any{"sp_openid": inProv, "sub_openid": inSub1}
		}), 400, "PARAM_ERROR", "二选一"},
		{"partner, sub_openid without sub_appid", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["payer"] = map[string]any{"sub_openid": inSub1}
		}), 400, "PARAM_ERROR", "sub_appid必填"},
		{"partner, header mchid is not sp_mchid", prov, prov, partnerPath, partner(func(b map[string]any) { b["sp_mchid"] = def.MchID }), 400, "PARAM_ERROR", "http header中的mchid"},
		{"partner API by a direct merchant", def, def, partnerPath, partner(func(b map[string]any) { b["sp_mchid"], b["sp_appid"] = def.MchID, defOA }), 400, "PARAM_ERROR", "普通商户不允许传sub_mch_id"},
		{"partner, sp_appid not the provider's", prov, prov, partnerPath, partner(func(b map[string]any) { b["sp_appid"] = defOA }), 400, "APPID_MCHID_NOT_MATCH", ""},
		{"partner, sub_mchid not the provider's", prov, prov, partnerPath, partner(func(b map[string]any) { b["sub_mchid"] = "1699999999" }), 403, "NO_AUTH", "受理关系不存在"},
		{"partner, sub_appid not the sub-merchant's", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["sub_appid"], b["payer"] = defOA, map[string]any{"sub_openid": inDef}
		}), 400, "PARAM_ERROR", "sub_mch_id与sub_appid不匹配"},
		{"partner, sp_openid of the sub-merchant's app", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["payer"] = map[string]any{"sp_openid": inSub1}
		}), 400, "PARAM_ERROR", "appid和openid不匹配"},
		{"partner, sub_openid of the provider's app", prov, prov, partnerPath, partner(func(b map[string]any) {
			b["sub_appid"], b["payer"] = sub1Mini, map[string]any{"sub_openid": inProv}
		}), 400, "PARAM_ERROR", "appid和openid不匹配"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := mu.v3call(t, c.signer, c.key, http.MethodPost, c.path, c.body)
			msg, _ := json.Marshal(out)
			if status != c.status || c.code != "" && out["code"] != c.code || !strings.Contains(string(msg), c.msgHas) {
				t.Fatalf("got %d %s; want %d %s %q", status, msg, c.status, c.code, c.msgHas)
			}
		})
	}
	// v2: the same rules, as return_msg (transport) or err_code_des (business).
	order := func(appid, openid string, extra map[string]string) map[string]string {
		p := map[string]string{"appid": appid, "body": "d", "out_trade_no": "W-" + v3.NonceStr()[:10], "total_fee": "1",
			"spbill_create_ip": "127.0.0.1", "notify_url": notify, "trade_type": "JSAPI", "openid": openid}
		for k, v := range extra {
			if v == "" {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return p
	}
	for _, c := range []struct {
		name     string
		m        *wechat.Merchant
		key      wechat.Secret
		p        map[string]string
		want     string // return_msg or err_code_des; "" for SUCCESS
		business bool
	}{
		{"direct, all good", def, def.APIKey, order(defOA, inDef, nil), "", false},
		{"signed with another merchant's key", sec, def.APIKey, order(secOA, inSec, nil), "签名错误", false},
		{"appid of another merchant", def, def.APIKey, order(secOA, inSec, nil), "appid和mch_id不匹配", false},
		{"openid of another app", def, def.APIKey, order(defOA, inSec, nil), "appid和openid不匹配", true},
		{"provider without sub_mch_id", prov, prov.APIKey, order(provOA, inProv, nil), "受理机构必须传入sub_mch_id", false},
		{"direct with sub_mch_id", def, def.APIKey, order(defOA, inDef, map[string]string{"sub_mch_id": sub1.SubMchID}), "普通商户不允许传sub_mch_id", false},
		{"partner, sp openid, all good", prov, prov.APIKey, order(provOA, inProv, map[string]string{"sub_mch_id": sub1.SubMchID}), "", false},
		{"partner, sub_openid, all good", prov, prov.APIKey, order(provOA, "", map[string]string{"sub_mch_id": sub1.SubMchID, "sub_appid": sub1Mini, "sub_openid": inSub1}), "", false},
		{"partner, unknown sub_mch_id", prov, prov.APIKey, order(provOA, inProv, map[string]string{"sub_mch_id": "1699999999"}), "受理关系不存在", false},
		{"partner, sub_appid not the sub-merchant's", prov, prov.APIKey, order(provOA, "", map[string]string{"sub_mch_id": sub1.SubMchID, "sub_appid": defOA, "sub_openid": inDef}), "sub_mch_id与sub_appid不匹配", false},
		{"partner, sub_openid without sub_appid", prov, prov.APIKey, order(provOA, "", map[string]string{"sub_mch_id": sub1.SubMchID, "sub_openid": inSub1}), "sub_openid", true},
		{"partner, openid of the sub-merchant's app", prov, prov.APIKey, order(provOA, inSub1, map[string]string{"sub_mch_id": sub1.SubMchID}), "appid和openid不匹配", true},
	} {
		t.Run("v2 "+c.name, func(t *testing.T) {
			out := mu.v2call(t, c.m, c.key, "/pay/unifiedorder", c.p)
			switch {
			case c.want == "":
				if out["result_code"] != "SUCCESS" || out["prepay_id"] == "" {
					t.Fatalf("got %v", out)
				}
				if c.m == prov && out["sub_mch_id"] != sub1.SubMchID {
					t.Fatalf("partner answer without sub_mch_id: %v", out)
				}
			case c.business:
				if out["result_code"] != "FAIL" || !strings.Contains(out["err_code_des"], c.want) {
					t.Fatalf("got %v, want err_code_des %q", out, c.want)
				}
			default:
				if out["return_code"] != "FAIL" || out["return_msg"] != c.want {
					t.Fatalf("got %v, want return_msg %q", out, c.want)
				}
			}
		})
	}
}

// decryptV3 verifies a v3 notification with m's WeChat Pay key and decrypts
// it with m's APIv3 key.
func decryptV3(t *testing.T, m *wechat.Merchant, n note) map[string]any {
	t.Helper()
	if err := v3.VerifyResponse(m.WechatPayPublicKey, n.header, n.body, time.Now()); err != nil {
		t.Fatalf("notification not signed with WeChat Pay's key for %s: %v", m.Name, err)
	}
	var env v3.Notification
	if err := json.Unmarshal(n.body, &env); err != nil {
		t.Fatal(err)
	}
	plain, err := v3.DecryptResource(string(m.APIv3Key), env.Resource)
	if err != nil {
		t.Fatalf("not encrypted with %s's APIv3 key: %v", m.Name, err)
	}
	out := map[string]any{}
	_ = json.Unmarshal(plain, &out)
	return out
}

func TestPartnerV3EndToEnd(t *testing.T) {
	mu := startMulti(t, t.TempDir(), "")
	def, prov, sub1, sub2 := mu.m(t, "default"), mu.m(t, "provider"), mu.m(t, "provider-sub1"), mu.m(t, "provider-sub2")
	provOA, sub1Mini := appOf(t, prov, wechat.AppOfficialAccount), appOf(t, sub1, wechat.AppMiniProgram)
	_, inMini := mu.issue(t, "/sim/login", sub1Mini, "carol")
	_, inProvOA := mu.issue(t, "/sim/oauth/code", provOA, "carol")
	status, out := mu.v3call(t, prov, prov, http.MethodPost, "/v3/pay/partner/transactions/jsapi", map[string]any{
		"sp_appid": provOA, "sp_mchid": prov.MchID, "sub_appid": sub1Mini, "sub_mchid": sub1.SubMchID, "description": "tea",
		"out_trade_no": "PT-1", "notify_url": mu.shop.URL + "/v3/pay", "amount": map[string]any{"total": 300},
		"payer": map[string]any{"sub_openid": inMini}})
	if status != 200 {
		t.Fatalf("prepay: %d %v", status, out)
	}
	prepay := out["prepay_id"].(string)
	// The pay sheet, in the sub-merchant's mini-program.
	for _, c := range []struct {
		name, running, signedApp string
		signer                   *wechat.Merchant
		code                     string
	}{
		{"signed over sp_appid", sub1Mini, provOA, prov, "2"},
		{"opened in the provider's app", provOA, provOA, prov, "2"},
		{"an app of neither", def.AppID, def.AppID, prov, "-1"},
		{"signed with another merchant's key", sub1Mini, sub1Mini, def, "2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := v3PayParams(t, c.signer, c.signedApp, prepay)
			delete(p, "appId") // wx.requestPayment: the running mini-program's
			if c.running != sub1Mini {
				p["appId"] = c.signedApp
			}
			status, out := mu.pay(t, c.running, p)
			if status != http.StatusBadRequest || out["err_code"] != c.code {
				t.Fatalf("got %d %v, want err_code %s", status, out, c.code)
			}
		})
	}
	p := v3PayParams(t, prov, sub1Mini, prepay)
	delete(p, "appId")
	if status, out := mu.pay(t, sub1Mini, p); status != 200 || out["trade_state"] != "SUCCESS" {
		t.Fatalf("pay: %d %v", status, out)
	}
	n := mu.note(t)
	res := decryptV3(t, prov, n)
	payer, _ := res["payer"].(map[string]any)
	if res["sp_mchid"] != prov.MchID || res["sub_mchid"] != sub1.SubMchID || res["sp_appid"] != provOA ||
		res["sub_appid"] != sub1Mini || payer["sub_openid"] != inMini || payer["sp_openid"] != inProvOA || res["mchid"] != nil {
		t.Fatalf("partner notification: %v", res)
	}
	if v3.VerifyResponse(def.WechatPayPublicKey, n.header, n.body, time.Now()) == nil {
		t.Fatal("a provider's notification verifies with another merchant's WeChat Pay key")
	}
	// Queries: by number and by id, with both merchant numbers; another sub-merchant's view is ORDER_NOT_EXIST.
	q := "?sp_mchid=" + prov.MchID + "&sub_mchid=" + sub1.SubMchID
	status, tx := mu.v3call(t, prov, prov, http.MethodGet, "/v3/pay/partner/transactions/out-trade-no/PT-1"+q, nil)
	if status != 200 || tx["trade_state"] != "SUCCESS" || tx["sub_mchid"] != sub1.SubMchID {
		t.Fatalf("query: %d %v", status, tx)
	}
	if status, byID := mu.v3call(t, prov, prov, http.MethodGet, "/v3/pay/partner/transactions/id/"+tx["transaction_id"].(string)+q, nil); status != 200 || byID["out_trade_no"] != "PT-1" {
		t.Fatalf("query by id: %d %v", status, byID)
	}
	if status, out := mu.v3call(t, prov, prov, http.MethodGet, "/v3/pay/partner/transactions/out-trade-no/PT-1?sp_mchid="+prov.MchID+"&sub_mchid="+sub2.SubMchID, nil); status != 404 || out["code"] != "ORDER_NOT_EXIST" {
		t.Fatalf("sub2 queries sub1's order: %d %v", status, out)
	}
	if status, out := mu.v3call(t, def, def, http.MethodGet, "/v3/pay/transactions/out-trade-no/PT-1?mchid="+def.MchID, nil); status != 404 {
		t.Fatalf("default queries the provider's order: %d %v", status, out)
	}
	// Refund with sub_mchid, its query, its notification.
	refund := map[string]any{"sub_mchid": sub1.SubMchID, "out_trade_no": "PT-1", "out_refund_no": "PR-1",
		"notify_url": mu.shop.URL + "/v3/refund", "amount": map[string]any{"refund": 100, "total": 300, "currency": "CNY"}}
	if status, out := mu.v3call(t, prov, prov, http.MethodPost, "/v3/refund/domestic/refunds", refund); status != 200 || out["status"] != "PROCESSING" {
		t.Fatalf("refund: %d %v", status, out)
	}
	delete(refund, "sub_mchid")
	if status, out := mu.v3call(t, prov, prov, http.MethodPost, "/v3/refund/domestic/refunds", refund); status != 400 || !strings.Contains(out["message"].(string), "受理机构必须传入sub_mch_id") {
		t.Fatalf("refund without sub_mchid: %d %v", status, out)
	}
	if status, out := mu.v3call(t, prov, prov, http.MethodGet, "/v3/refund/domestic/refunds/PR-1?sub_mchid="+sub1.SubMchID, nil); status != 200 || out["out_refund_no"] != "PR-1" {
		t.Fatalf("refund query: %d %v", status, out)
	}
	if status, _ := mu.v3call(t, prov, prov, http.MethodGet, "/v3/refund/domestic/refunds/PR-1?sub_mchid="+sub2.SubMchID, nil); status != 404 {
		t.Fatalf("sub2 queries sub1's refund: %d", status)
	}
	if !mu.sim.SettleRefund("PR-1") {
		t.Fatal("refund not settled")
	}
	rn := decryptV3(t, prov, mu.note(t))
	if rn["sp_mchid"] != prov.MchID || rn["sub_mchid"] != sub1.SubMchID || rn["out_refund_no"] != "PR-1" || rn["refund_status"] != "SUCCESS" {
		t.Fatalf("refund notification: %v", rn)
	}
	// sub2 has no app: its payer pays with sp_openid in the provider's Official Account; then a close.
	for i, no := range []string{"PT-2", "PT-3"} {
		status, out = mu.v3call(t, prov, prov, http.MethodPost, "/v3/pay/partner/transactions/jsapi", map[string]any{
			"sp_appid": provOA, "sp_mchid": prov.MchID, "sub_mchid": sub2.SubMchID, "description": "cake", "out_trade_no": no,
			"notify_url": mu.shop.URL + "/v3/pay", "amount": map[string]any{"total": 100 + i}, "payer": map[string]any{"sp_openid": inProvOA}})
		if status != 200 {
			t.Fatalf("sub2 prepay: %d %v", status, out)
		}
	}
	if status, out := mu.pay(t, "", v3PayParams(t, prov, provOA, out["prepay_id"].(string))); status != 200 {
		t.Fatalf("sub2 pay: %d %v", status, out)
	}
	if res := decryptV3(t, prov, mu.note(t)); res["sub_mchid"] != sub2.SubMchID || res["sub_appid"] != nil {
		t.Fatalf("sub2 notification: %v", res)
	}
	if status, out := mu.v3call(t, prov, prov, http.MethodPost, "/v3/pay/partner/transactions/out-trade-no/PT-2/close",
		map[string]any{"sp_mchid": prov.MchID, "sub_mchid": sub2.SubMchID}); status != 204 {
		t.Fatalf("close: %d %v", status, out)
	}
	// The state says whose each payment is; the provider's bill lists its sub-merchants, the direct one's not.
	for _, o := range mu.sim.Snapshot().Orders {
		if o.MchID != prov.MchID || o.SubMchID == "" || o.AppID != provOA {
			t.Fatalf("state: order %+v", o)
		}
	}
	today, _ := bill.ParseDate(time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02"))
	data, err := mu.sim.MerchantTradeBill(prov.MchID, today, bill.All)
	if err != nil || !strings.Contains(string(data), sub1.SubMchID) || !strings.Contains(string(data), sub2.SubMchID) {
		t.Fatalf("provider's bill: %v\n%s", err, data)
	}
	if data, err := mu.sim.TradeBill(today, bill.All); err == nil {
		t.Fatalf("default's bill lists others' trades:\n%s", data)
	}
}

func TestPartnerV2EndToEnd(t *testing.T) {
	mu := startMulti(t, t.TempDir(), "")
	prov, sub2 := mu.m(t, "provider"), mu.m(t, "provider-sub2")
	provOA := appOf(t, prov, wechat.AppOfficialAccount)
	_, openid := mu.issue(t, "/sim/oauth/code", provOA, "dan")
	out := mu.v2call(t, prov, prov.APIKey, "/pay/unifiedorder", map[string]string{"appid": provOA, "sub_mch_id": sub2.SubMchID,
		"body": "d", "out_trade_no": "PV2-1", "total_fee": "200", "spbill_create_ip": "127.0.0.1",
		"notify_url": mu.shop.URL + "/v2/pay", "trade_type": "JSAPI", "openid": openid})
	if out["result_code"] != "SUCCESS" {
		t.Fatalf("unifiedorder: %v", out)
	}
	ts := time.Now().Unix()
	if status, res := mu.pay(t, "", v2.PayParams(provOA, out["prepay_id"], "n1", ts, string(mu.m(t, "default").APIKey), v2.SignMD5)); status != 400 || res["err_code"] != "2" {
		t.Fatalf("paySign with another merchant's key: %d %v", status, res)
	}
	if status, res := mu.pay(t, "", v2.PayParams(provOA, out["prepay_id"], "n1", ts, string(prov.APIKey), v2.SignMD5)); status != 200 {
		t.Fatalf("pay: %d %v", status, res)
	}
	n := mu.note(t)
	p, err := v2.ParseXML(n.body)
	if err != nil || v2.Verify(p, string(prov.APIKey)) != nil || p["sub_mch_id"] != sub2.SubMchID || p["mch_id"] != prov.MchID || p["openid"] != openid {
		t.Fatalf("v2 partner notification: %v %v", p, err)
	}
	q := mu.v2call(t, prov, prov.APIKey, "/pay/orderquery", map[string]string{"appid": provOA, "sub_mch_id": sub2.SubMchID, "out_trade_no": "PV2-1"})
	if q["trade_state"] != "SUCCESS" || q["sub_mch_id"] != sub2.SubMchID {
		t.Fatalf("orderquery: %v", q)
	}
	rf := mu.v2call(t, prov, prov.APIKey, "/secapi/pay/refund", map[string]string{"appid": provOA, "sub_mch_id": sub2.SubMchID,
		"out_trade_no": "PV2-1", "out_refund_no": "PV2-R1", "total_fee": "200", "refund_fee": "50", "notify_url": mu.shop.URL + "/v2/refund"})
	if rf["result_code"] != "SUCCESS" {
		t.Fatalf("refund: %v", rf)
	}
	mu.sim.SettleRefund("PV2-R1")
	n = mu.note(t)
	outer, _ := v2.ParseXML(n.body)
	plain, err := v2.DecryptReqInfo(outer["req_info"], string(prov.APIKey))
	if err != nil || outer["sub_mch_id"] != sub2.SubMchID || !strings.Contains(string(plain), "PV2-R1") {
		t.Fatalf("v2 refund notification: %v %v", outer, err)
	}
}

func TestSameOutTradeNoTwoMerchantsAndRestart(t *testing.T) {
	keys, ledger := t.TempDir(), t.TempDir()
	mu := startMulti(t, keys, ledger)
	def, sec := mu.m(t, "default"), mu.m(t, "second")
	ids := map[string]string{}
	for _, m := range []*wechat.Merchant{def, sec} {
		oa := appOf(t, m, wechat.AppOfficialAccount)
		_, openid := mu.issue(t, "/sim/oauth/code", oa, "erin")
		status, out := mu.v3call(t, m, m, http.MethodPost, "/v3/pay/transactions/jsapi", map[string]any{"appid": oa, "mchid": m.MchID,
			"description": m.Name, "out_trade_no": "SAME-1", "notify_url": "https://shop.example/n", "amount": map[string]any{"total": 5},
			"payer": map[string]any{"openid": openid}})
		if status != 200 {
			t.Fatalf("%s: %d %v", m.Name, status, out)
		}
		ids[m.Name] = out["prepay_id"].(string)
	}
	if ids["default"] == ids["second"] {
		t.Fatal("two merchants' orders are one")
	}
	if status, out := mu.v3call(t, sec, sec, http.MethodGet, "/v3/pay/transactions/out-trade-no/ONLY-DEFAULT?mchid="+sec.MchID, nil); status != 404 || out["code"] != "ORDER_NOT_EXIST" {
		t.Fatalf("unknown number: %d %v", status, out)
	}
	check := func(mu *multi) {
		t.Helper()
		for _, m := range []*wechat.Merchant{def, sec} {
			status, tx := mu.v3call(t, m, m, http.MethodGet, "/v3/pay/transactions/out-trade-no/SAME-1?mchid="+m.MchID, nil)
			if status != 200 || tx["mchid"] != m.MchID {
				t.Fatalf("%s's SAME-1: %d %v", m.Name, status, tx)
			}
		}
		if n := len(mu.sim.Snapshot().Orders); n != 2 {
			t.Fatalf("%d orders", n)
		}
	}
	check(mu)
	mu.stop()
	check(startMulti(t, keys, ledger))
}

// A ledger written before merchants were told apart (refunds without their
// mchid) still loads: each refund is its order's merchant's.
func TestOldLedgerLoads(t *testing.T) {
	keys, ledger := t.TempDir(), t.TempDir()
	k, err := sim.EnsureKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	m := k.Merchant
	old := `{"order":{"api":"v3","appid":"` + m.AppID + `","mchid":"` + m.MchID + `","out_trade_no":"OLD-1","prepay_id":"wx1","total_fen":9,"openid":"o1","notify_url":"https://s.example/n","trade_type":"JSAPI","trade_state":"REFUND","refunded_fen":9,"created_at":"2025-01-01T00:00:00Z"},"seq":7}
{"refund":{"api":"v3","out_refund_no":"OLD-R1","out_trade_no":"OLD-1","refund_id":"5030","refund_fen":9,"status":"SUCCESS","created_at":"2025-01-01T00:00:00Z"},"seq":8}
`
	if err := os.WriteFile(filepath.Join(ledger, sim.LedgerFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Config{KeysDir: keys, LedgerDir: ledger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Snapshot()
	if len(st.Refunds) != 1 || st.Refunds[0].MchID != m.MchID || st.Refunds[0].AppID != m.AppID || len(st.Orders) != 1 {
		t.Fatalf("old ledger: %+v", st)
	}
}
