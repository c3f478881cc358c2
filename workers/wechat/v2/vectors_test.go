package v2_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

func TestSignVectors(t *testing.T) {
	vs := wechattest.Load(t)
	tests := []struct {
		id string
		t  v2.SignType
	}{
		{"v2_sign_md5_official", v2.SignMD5},
		{"v2_sign_hmac_sha256_official", v2.SignHMACSHA256},
		{"v2_sign_exclusions", v2.SignMD5},
		{"v2_sign_unifiedorder_jsapi_md5", v2.SignMD5},
		{"v2_paysign_miniprogram_md5_official", v2.SignMD5},
		{"v2_paysign_jsapi_hmac_sha256", v2.SignHMACSHA256},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			v := vs.ByID(t, tc.id)
			var in struct{ Params map[string]string }
			v.Decode(t, "inputs", &in)
			key := v.String("key")
			if want := v.String("string_sign_temp"); want != "" {
				if got := v2.StringToSign(in.Params, key); got != want {
					t.Errorf("stringSignTemp\n got %s\nwant %s", got, want)
				}
			}
			if want := v.String("string_a"); want != "" {
				if got := strings.TrimSuffix(v2.StringToSign(in.Params, key), "&key="+key); got != want {
					t.Errorf("stringA\n got %s\nwant %s", got, want)
				}
			}
			want := v.String("expected")
			if got := v2.Sign(in.Params, key, tc.t); got != want {
				t.Errorf("Sign = %s, want %s", got, want)
			}
			signed := map[string]string{"sign": want}
			for k, val := range in.Params {
				if k != "sign" {
					signed[k] = val
				}
			}
			if err := v2.Verify(signed, key); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestUnifiedOrderVectorXML(t *testing.T) {
	v := wechattest.Load(t).ByID(t, "v2_sign_unifiedorder_jsapi_md5")
	params, err := v2.ParseXML([]byte(v.String("request_xml")))
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.Verify(params, v.String("key")); err != nil {
		t.Fatalf("the vector's request XML does not verify: %v", err)
	}
	if params["body"] != "wxflow-测试商品" {
		t.Errorf("body = %q", params["body"])
	}
}

func TestPayParamsVector(t *testing.T) {
	v := wechattest.Load(t).ByID(t, "v2_paysign_miniprogram_md5_official")
	var in struct{ Params map[string]string }
	v.Decode(t, "inputs", &in)
	p := in.Params
	got := v2.PayParams(p["appId"], strings.TrimPrefix(p["package"], "prepay_id="), p["nonceStr"], 1490840662, v.String("key"), v2.SignMD5)
	if got["paySign"] != v.String("expected") {
		t.Errorf("paySign = %s, want %s", got["paySign"], v.String("expected"))
	}
	if got["timeStamp"] != "1490840662" {
		t.Errorf("timeStamp = %q", got["timeStamp"])
	}
}

func TestPaymentNotifyVector(t *testing.T) {
	v := wechattest.Load(t).ByID(t, "v2_payment_notify_verify")
	var in struct {
		RawBody string `json:"raw_body"`
	}
	v.Decode(t, "inputs", &in)
	key := v.String("key")
	params, err := v2.ParseXML([]byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if got := v2.StringToSign(params, key); got != v.String("string_sign_temp") {
		t.Errorf("stringSignTemp\n got %s\nwant %s", got, v.String("string_sign_temp"))
	}
	if err := v2.Verify(params, key); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	params["total_fee"] = "100"
	if err := v2.Verify(params, key); !errors.Is(err, wechat.ErrSignature) {
		t.Fatalf("Verify of a changed total_fee = %v, want ErrSignature", err)
	}
	if got := string(v2.NotifyReply(true, "OK")); got != v.String("reply_on_success") {
		t.Errorf("reply = %s", got)
	}
}

func TestRefundReqInfoVector(t *testing.T) {
	v := wechattest.Load(t).ByID(t, "v2_refund_notify_req_info")
	var in struct {
		RawBody string `json:"raw_body"`
		ReqInfo string `json:"req_info"`
	}
	v.Decode(t, "inputs", &in)
	key := v.String("key")
	outer, err := v2.ParseXML([]byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if outer["req_info"] != in.ReqInfo {
		t.Fatalf("req_info in raw body differs from the input")
	}
	plain, err := v2.DecryptReqInfo(in.ReqInfo, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != v.String("expected_plaintext") {
		t.Errorf("plaintext\n got %s\nwant %s", plain, v.String("expected_plaintext"))
	}
	again, err := v2.EncryptReqInfo(plain, key)
	if err != nil || again != in.ReqInfo {
		t.Errorf("EncryptReqInfo did not give back the vector's req_info (err %v)", err)
	}
	if _, err := v2.DecryptReqInfo(in.ReqInfo, strings.Repeat("x", 32)); !errors.Is(err, wechat.ErrDecrypt) {
		t.Errorf("wrong key: err = %v, want ErrDecrypt", err)
	}
	if _, err := v2.DecryptReqInfo(base64.StdEncoding.EncodeToString([]byte("short")), key); !errors.Is(err, wechat.ErrDecrypt) {
		t.Errorf("short: err = %v, want ErrDecrypt", err)
	}
}

func TestParseXMLRefuses(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"doctype", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>`},
		{"entity", `<xml><a>&e;</a></xml>`},
		{"nested", `<xml><a><b>1</b></a></xml>`},
		{"repeated", `<xml><a>1</a><a>2</a></xml>`},
		{"two roots", `<xml><a>1</a></xml><xml></xml>`},
		{"not xml", `{"a":1}`},
		{"empty", ``},
		{"huge", "<xml><a>" + strings.Repeat("x", v2.MaxXMLBytes) + "</a></xml>"},
		{"not utf8", "<xml><a>\xff</a></xml>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v2.ParseXML([]byte(tc.body)); !errors.Is(err, wechat.ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	in := map[string]string{"a": "x]]>y", "body": "测试 & <tag>", "total_fee": "1"}
	out, err := v2.ParseXML(v2.EncodeXML(in))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range in {
		if out[k] != want {
			t.Errorf("%s = %q, want %q", k, out[k], want)
		}
	}
}

func FuzzParseXML(f *testing.F) {
	f.Add([]byte(`<xml><a><![CDATA[1]]></a><b>2</b></xml>`))
	f.Add([]byte(`<!DOCTYPE x><xml/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		params, err := v2.ParseXML(body)
		if err != nil {
			return
		}
		encoded := v2.EncodeXML(params)
		if len(encoded) > v2.MaxXMLBytes {
			return // CDATA wrapping made a document near the limit too big: refused, rightly
		}
		again, err := v2.ParseXML(encoded)
		if err != nil {
			t.Fatalf("re-encoded document does not parse: %v", err)
		}
		for k, v := range params {
			if again[k] != v {
				t.Fatalf("field %s: %q became %q", k, v, again[k])
			}
		}
	})
}

func ExampleSign() {
	params := map[string]string{
		"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
		"body": "test", "nonce_str": "ibuaiVcKdpRxkhJA",
	}
	fmt.Println(v2.Sign(params, "192006250b4c09247ec02edce69f6a2d", v2.SignMD5))
	// Output: 9A0A8659F005D6984697E2CA0A9CF3B7
}
