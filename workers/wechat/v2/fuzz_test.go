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
