package v2_test

import (
	"testing"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// benchSign keeps the signatures alive so the compiler cannot drop the work.
var benchSign string

// unifiedOrderParams are the fields of a JSAPI unified order, the request
// every v2 payment signs once (and every retry signs again).
func unifiedOrderParams() map[string]string {
	return map[string]string{
		"appid": "wxd678efh567hg6787", "mch_id": "1900000109", "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
		"body": "wxflow-测试商品", "out_trade_no": "wxflow-20231115-0001", "total_fee": "1990",
		"spbill_create_ip": "203.0.113.7", "notify_url": "https://shop.example.com/wechat/notify/default/v2/pay",
		"trade_type": "JSAPI", "openid": "oTEST-openid-0000000000000001", "attach": "a1",
		"time_expire": "20231115081320",
	}
}

// benchmarkSign measures Sign over a unified order with algorithm t: the
// sorting and string building are shared, the hash differs.
func benchmarkSign(b *testing.B, t v2.SignType) {
	p := unifiedOrderParams()
	if t == v2.SignHMACSHA256 {
		p["sign_type"] = string(t)
	}
	key := wechattest.Load(b).Keys.V2APIKey
	b.ReportAllocs()
	for b.Loop() {
		benchSign = v2.Sign(p, key, t)
	}
}

// BenchmarkSignMD5 is the cost of signing a request the default way.
func BenchmarkSignMD5(b *testing.B) { benchmarkSign(b, v2.SignMD5) }

// BenchmarkSignHMACSHA256 is the cost of signing with sign_type=HMAC-SHA256.
func BenchmarkSignHMACSHA256(b *testing.B) { benchmarkSign(b, v2.SignHMACSHA256) }

// BenchmarkVerifyNotify is what a genuine payment notification costs the
// notify handler before it publishes a command: parsing the XML, verifying
// the signature over every field, checking appid and mch_id, reading the
// amount.
func BenchmarkVerifyNotify(b *testing.B) {
	c, vs := vectorClient(b)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(b, "v2_payment_notify_verify").Decode(b, "inputs", &in)
	body := []byte(in.RawBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := c.ParseNotify(body)
		if err != nil || !n.Paid {
			b.Fatalf("%+v %v", n, err)
		}
	}
}
