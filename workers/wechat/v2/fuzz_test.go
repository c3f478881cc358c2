package v2_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// FuzzDecryptReqInfo feeds arbitrary req_info values to the decryption a
// refund notification rests on: the outer XML of a v2 refund notification is
// not signed, so req_info is the only proof that WeChat sent it, and anyone
// on the Internet can post one to notify_url.
//
// AES-256-ECB with PKCS#7 padding is deterministic, so whatever decrypts must
// encrypt back to exactly the bytes that came in: a decryption that drops,
// adds or misreads a byte (a lax padding check, say) breaks that. Every
// refusal must wrap wechat.ErrDecrypt, which the notification handler maps to
// its answer; and the plaintext, which goes to ParseXML next, must not panic it.
func FuzzDecryptReqInfo(f *testing.F) {
	vs := wechattest.Load(f)
	var in struct {
		ReqInfo string `json:"req_info"`
	}
	vs.ByID(f, "v2_refund_notify_req_info").Decode(f, "inputs", &in)
	key := vs.Keys.V2APIKey
	f.Add(in.ReqInfo)
	f.Fuzz(func(t *testing.T, reqInfo string) {
		plain, err := v2.DecryptReqInfo(reqInfo, key)
		if err != nil {
			if !errors.Is(err, wechat.ErrDecrypt) {
				t.Fatalf("refusal %v does not wrap ErrDecrypt", err)
			}
			return
		}
		sent, err := base64.StdEncoding.DecodeString(reqInfo)
		if err != nil {
			t.Fatalf("decrypted a req_info that is not base64: %v", err)
		}
		again, err := v2.EncryptReqInfo(plain, key)
		if err != nil {
			t.Fatal(err)
		}
		back, err := base64.StdEncoding.DecodeString(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, sent) {
			t.Fatalf("plaintext %q encrypts to %x, but %x came in", plain, back, sent)
		}
		_, _ = v2.ParseXML(plain)
	})
}

// FuzzParsePartnerNotify signs payment notifications with any identities
// (so they pass the signature, as a notification of another sub-merchant of
// the same provider would) and feeds them to a sub-merchant's client. What
// it accepts must be its own: the provider's mch_id, its sub_mch_id, a
// provider's app as appid, no sub_appid or its own, and OpenID the payer
// under the order's app. Every refusal is ErrForeign or ErrMalformed.
func FuzzParsePartnerNotify(f *testing.F) {
	m := subMerchant(f, true)
	c, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(spOA, spMchID, subMP, subMchID, "o-sp", "o-sub")
	f.Add(spOA, spMchID, "", subMchID, "o-sp", "")
	f.Add(subMP, spMchID, spOA, subMchID, "o-sp", "o-sub")
	f.Add(spMP, spMchID, "", "", "o-sp", "")
	f.Fuzz(func(t *testing.T, appid, mchid, subAppID, subMchid, openid, subOpenID string) {
		p := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": appid, "mch_id": mchid,
			"sub_appid": subAppID, "sub_mch_id": subMchid, "openid": openid, "sub_openid": subOpenID, "nonce_str": "n",
			"total_fee": "1", "transaction_id": "4200", "out_trade_no": "wx-1"}
		p["sign"] = v2.Sign(p, string(m.APIKey), v2.SignMD5)
		n, err := c.ParseNotify(v2.EncodeXML(p))
		if err != nil {
			if !errors.Is(err, wechat.ErrForeign) && !errors.Is(err, wechat.ErrMalformed) && !errors.Is(err, wechat.ErrSignature) {
				t.Fatalf("refusal %v is neither foreign nor malformed", err)
			}
			return
		}
		want := n.Fields["openid"]
		if n.SubAppID != "" {
			want = n.Fields["sub_openid"]
		}
		if n.MchID != spMchID || n.SubMchID != subMchID || !m.IsSpApp(n.AppID) || n.SubAppID != "" && n.SubAppID != subMP || n.OpenID != want {
			t.Fatalf("accepted a notification that is not the sub-merchant's: %+v", n)
		}
	})
}
