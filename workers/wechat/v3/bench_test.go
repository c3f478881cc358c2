package v3_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// benchAuth keeps the headers alive so the compiler cannot drop the work.
var benchAuth string

// BenchmarkSignRequest is what every v3 call pays before it leaves: the
// five-line message, a SHA256withRSA (2048-bit) signature and the
// Authorization header, here for a JSAPI prepay body.
func BenchmarkSignRequest(b *testing.B) {
	m := testMerchant(b, wechattest.Load(b))
	body := []byte(`{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"wxflow-测试商品",` +
		`"out_trade_no":"wxflow-20231115-0001","notify_url":"https://shop.example.com/wechat/notify/default/v3/pay",` +
		`"amount":{"total":1990,"currency":"CNY"},"payer":{"openid":"oTEST-openid-0000000000000001"}}`)
	ts := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		nonce := v3.NonceStr()
		sig, err := v3.SignMessage(m.PrivateKey, v3.RequestMessage(http.MethodPost, "/v3/pay/transactions/jsapi", ts, nonce, body))
		if err != nil {
			b.Fatal(err)
		}
		benchAuth = v3.AuthorizationHeader(m.MchID, m.SerialNo, nonce, ts, sig)
	}
}

// notificationVector is the vectors' genuine payment notification and the
// time it was signed.
func notificationVector(b *testing.B) (http.Header, []byte, int64) {
	var in notifyInputs
	wechattest.Load(b).ByID(b, "v3_notification_payment").Decode(b, "inputs", &in)
	var ts int64
	if _, err := fmt.Sscan(in.Headers["Wechatpay-Timestamp"], &ts); err != nil {
		b.Fatal(err)
	}
	return header(in.Headers), []byte(in.RawBody), ts
}

// BenchmarkVerifyResponse is the signature check every v3 answer and
// notification goes through: timestamp window, then RSA verification over
// the raw body.
func BenchmarkVerifyResponse(b *testing.B) {
	h, body, ts := notificationVector(b)
	pub, err := wechat.ParseRSAPublicKey([]byte(wechattest.Load(b).Keys.V3.WechatpayPublicKeyPEM))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(ts+5, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v3.VerifyResponse(pub, h, body, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseNotify is a whole genuine payment notification as the notify
// handler takes it: serial lookup, signature, JSON envelope and resource
// decryption.
func BenchmarkParseNotify(b *testing.B) {
	h, body, ts := notificationVector(b)
	c, err := v3.NewClient(v3.Config{BaseURL: "http://unused", Merchant: testMerchant(b, wechattest.Load(b)),
		Now: func() time.Time { return time.Unix(ts, 0) }})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.ParseNotify(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptResource is the AEAD_AES_256_GCM opening of a refund
// notification's resource: base64, AES key schedule, GCM open.
func BenchmarkDecryptResource(b *testing.B) {
	vs := wechattest.Load(b)
	var in struct{ Resource v3.Resource }
	vs.ByID(b, "v3_notification_refund_resource").Decode(b, "inputs", &in)
	key := vs.Keys.V3.APIv3Key
	b.SetBytes(int64(len(in.Resource.Ciphertext)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v3.DecryptResource(key, in.Resource); err != nil {
			b.Fatal(err)
		}
	}
}
