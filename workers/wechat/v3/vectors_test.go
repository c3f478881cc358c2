package v3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

type requestInputs struct {
	Method       string `json:"method"`
	CanonicalURL string `json:"canonical_url"`
	Timestamp    string `json:"timestamp"`
	NonceStr     string `json:"nonce_str"`
	Body         string `json:"body"`
}

func TestRequestSignatureVectors(t *testing.T) {
	vs := wechattest.Load(t)
	key, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := wechat.ParseRSAPublicKey([]byte(vs.Keys.V3.MerchantPublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"v3_request_signature_post", "v3_request_signature_get_with_query"} {
		t.Run(id, func(t *testing.T) {
			v := vs.ByID(t, id)
			var in requestInputs
			v.Decode(t, "inputs", &in)
			var ts int64
			fmt.Sscan(in.Timestamp, &ts)
			msg := v3.RequestMessage(in.Method, in.CanonicalURL, ts, in.NonceStr, []byte(in.Body))
			if msg != v.String("string_to_sign") {
				t.Fatalf("message\n got %q\nwant %q", msg, v.String("string_to_sign"))
			}
			sig, err := v3.SignMessage(key, msg)
			if err != nil || sig != v.String("expected_signature") {
				t.Fatalf("signature mismatch (err %v)", err)
			}
			auth := v3.AuthorizationHeader(vs.Keys.V3.MchID, vs.Keys.V3.MerchantSerialNo, in.NonceStr, ts, sig)
			if auth != v.String("expected_authorization") {
				t.Fatalf("Authorization\n got %s\nwant %s", auth, v.String("expected_authorization"))
			}
			a, err := v3.ParseAuthorization(auth)
			if err != nil {
				t.Fatal(err)
			}
			if err := v3.VerifyRequest(pub, in.Method, in.CanonicalURL, []byte(in.Body), a, time.Unix(ts+10, 0)); err != nil {
				t.Fatalf("VerifyRequest: %v", err)
			}
			if err := v3.VerifyRequest(pub, in.Method, in.CanonicalURL, []byte(in.Body), a, time.Unix(ts+300, 0)); !errors.Is(err, wechat.ErrStale) {
				t.Fatalf("VerifyRequest 300 s later = %v, want ErrStale", err)
			}
			// Cross-check with the official SDK's verifier.
			sdk := verifiers.NewSHA256WithRSAPubkeyVerifier("merchant", *pub)
			if err := sdk.Verify(context.Background(), "merchant", msg, sig); err != nil {
				t.Fatalf("wechatpay-go does not accept our signature: %v", err)
			}
		})
	}
}

type notifyInputs struct {
	Headers map[string]string `json:"headers"`
	RawBody string            `json:"raw_body"`
}

func header(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func TestNotificationVectors(t *testing.T) {
	vs := wechattest.Load(t)
	pub, err := wechat.ParseRSAPublicKey([]byte(vs.Keys.V3.WechatpayPublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id    string
		valid bool
	}{
		{"v3_notification_payment", true},
		{"v3_notification_tampered_body", false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			v := vs.ByID(t, tc.id)
			var in notifyInputs
			v.Decode(t, "inputs", &in)
			h := header(in.Headers)
			var ts int64
			fmt.Sscan(in.Headers["Wechatpay-Timestamp"], &ts)
			now := time.Unix(ts+5, 0)
			err := v3.VerifyResponse(pub, h, []byte(in.RawBody), now)
			if tc.valid != (err == nil) {
				t.Fatalf("VerifyResponse = %v, want valid=%v", err, tc.valid)
			}
			if !tc.valid {
				if !errors.Is(err, wechat.ErrSignature) {
					t.Fatalf("err = %v, want ErrSignature", err)
				}
				return
			}
			if want := v.String("string_to_verify"); v3.ResponseMessage(ts, in.Headers["Wechatpay-Nonce"], []byte(in.RawBody)) != want {
				t.Errorf("message differs from string_to_verify")
			}
			if err := v3.VerifyResponse(pub, h, []byte(in.RawBody), time.Unix(ts+301, 0)); !errors.Is(err, wechat.ErrStale) {
				t.Errorf("301 s later: err = %v, want ErrStale", err)
			}
		})
	}
}

func TestNotificationPaymentDecrypt(t *testing.T) {
	vs := wechattest.Load(t)
	v := vs.ByID(t, "v3_notification_payment")
	var in notifyInputs
	v.Decode(t, "inputs", &in)
	m := testMerchant(t, vs)
	var ts int64
	fmt.Sscan(in.Headers["Wechatpay-Timestamp"], &ts)
	c, err := v3.NewClient(v3.Config{BaseURL: "http://unused", Merchant: m, Now: func() time.Time { return time.Unix(ts, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	_, plain, err := c.ParseNotify(header(in.Headers), []byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != v.String("expected_plaintext") {
		t.Fatalf("plaintext\n got %s\nwant %s", plain, v.String("expected_plaintext"))
	}
	tx, err := c.ParsePaymentNotify(header(in.Headers), []byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if tx.TradeState != "SUCCESS" || tx.Amount.Total <= 0 || tx.OutTradeNo == "" {
		t.Errorf("transaction = %+v", tx)
	}
}

func TestResourceVectors(t *testing.T) {
	vs := wechattest.Load(t)
	t.Run("v3_notification_refund_resource", func(t *testing.T) {
		v := vs.ByID(t, "v3_notification_refund_resource")
		var in struct{ Resource v3.Resource }
		v.Decode(t, "inputs", &in)
		plain, err := v3.DecryptResource(vs.Keys.V3.APIv3Key, in.Resource)
		if err != nil || string(plain) != v.String("expected_plaintext") {
			t.Fatalf("plaintext %q, err %v", plain, err)
		}
		again, err := v3.EncryptResource(vs.Keys.V3.APIv3Key, in.Resource.Nonce, in.Resource.AssociatedData, in.Resource.OriginalType, plain)
		if err != nil || again.Ciphertext != in.Resource.Ciphertext {
			t.Fatalf("EncryptResource does not give back the vector (err %v)", err)
		}
		sdk, err := utils.DecryptAES256GCM(vs.Keys.V3.APIv3Key, in.Resource.AssociatedData, in.Resource.Nonce, in.Resource.Ciphertext)
		if err != nil || sdk != string(plain) {
			t.Fatalf("wechatpay-go disagrees: %v", err)
		}
		in.Resource.AssociatedData = "transaction"
		if _, err := v3.DecryptResource(vs.Keys.V3.APIv3Key, in.Resource); !errors.Is(err, wechat.ErrDecrypt) {
			t.Fatalf("wrong associated data: err = %v, want ErrDecrypt", err)
		}
	})
	t.Run("gcm_sample_wechatpay_go_tests", func(t *testing.T) {
		v := vs.ByID(t, "gcm_sample_wechatpay_go_tests")
		var in struct {
			Key            string `json:"key"`
			Nonce          string `json:"nonce"`
			AssociatedData string `json:"associated_data"`
			Ciphertext     string `json:"ciphertext"`
		}
		v.Decode(t, "inputs", &in)
		plain, err := v3.DecryptResource(in.Key, v3.Resource{Ciphertext: in.Ciphertext, Nonce: in.Nonce, AssociatedData: in.AssociatedData})
		if err != nil || string(plain) != v.String("expected_plaintext") {
			t.Fatalf("plaintext %q, err %v", plain, err)
		}
	})
}

func TestPaySignVector(t *testing.T) {
	vs := wechattest.Load(t)
	v := vs.ByID(t, "v3_jsapi_paysign")
	var in map[string]string
	v.Decode(t, "inputs", &in)
	key, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	var ts int64
	fmt.Sscan(in["timeStamp"], &ts)
	p, err := v3.PayParams(key, in["appId"], in["package"][len("prepay_id="):], in["nonceStr"], ts)
	if err != nil {
		t.Fatal(err)
	}
	if p["paySign"] != v.String("expected_paySign") || p["signType"] != "RSA" || p["timeStamp"] != in["timeStamp"] {
		t.Fatalf("pay params = %v", p)
	}
}

func TestParseAuthorizationRefuses(t *testing.T) {
	for _, h := range []string{
		"", "Bearer x", v3.SchemaName + ` mchid="1"`, v3.SchemaName + ` mchid=1,nonce_str="a",timestamp="1",serial_no="s",signature="x"`,
		v3.SchemaName + ` mchid="1",nonce_str="a",timestamp="x",serial_no="s",signature="x"`,
	} {
		if _, err := v3.ParseAuthorization(h); !errors.Is(err, wechat.ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", h, err)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add(v3.AuthorizationHeader("1900000109", "3C0D", "NONCE", 1700000000, "c2ln"))
	f.Fuzz(func(t *testing.T, h string) {
		a, err := v3.ParseAuthorization(h)
		if err != nil {
			return
		}
		if _, err := v3.ParseAuthorization(v3.AuthorizationHeader(a.MchID, a.SerialNo, a.NonceStr, a.Timestamp, a.Signature)); err != nil {
			t.Fatalf("rebuilt header does not parse: %v", err)
		}
	})
}

func FuzzParseNotify(f *testing.F) {
	vs := wechattest.Load(f)
	var in notifyInputs
	vs.ByID(f, "v3_notification_payment").Decode(f, "inputs", &in)
	m := testMerchant(f, vs)
	c, err := v3.NewClient(v3.Config{BaseURL: "http://unused", Merchant: m, Now: func() time.Time { return time.Unix(1700000001, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(in.RawBody), in.Headers["Wechatpay-Signature"])
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := header(in.Headers)
		h.Set("Wechatpay-Signature", sig)
		_, err := c.ParsePaymentNotify(h, body)
		if err == nil && string(body) != in.RawBody {
			t.Fatalf("accepted a body that WeChat did not sign: %q", body)
		}
	})
}

// testMerchant is the vectors' merchant.
func testMerchant(t testing.TB, vs wechattest.Vectors) *wechat.Merchant {
	t.Helper()
	key, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := wechat.ParseRSAPublicKey([]byte(vs.Keys.V3.WechatpayPublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return &wechat.Merchant{Name: "test", AppID: "wxd678efh567hg6787", MchID: vs.Keys.V3.MchID,
		APIKey: wechat.Secret(vs.Keys.V2APIKey), APIv3Key: wechat.Secret(vs.Keys.V3.APIv3Key),
		SerialNo: vs.Keys.V3.MerchantSerialNo, PrivateKey: key,
		WechatPayPublicKeyID: vs.Keys.V3.WechatpayPublicKeyID, WechatPayPublicKey: pub}
}

func ExampleRequestMessage() {
	// A GET has an empty body line.
	fmt.Println(v3.RequestMessage("GET", "/v3/certificates", 1700000000, "N", nil) == "GET\n/v3/certificates\n1700000000\nN\n\n")
	// Output: true
}
