package v3_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// FuzzDecryptResource feeds arbitrary resource objects (the encrypted part of
// a WeChat Pay v3 notification) to DecryptResource with the merchant's
// APIv3 key. ParseNotify only reaches it after the signature verified, but
// the four fields are WeChat's bytes all the same, and the decryption must
// hold on its own.
//
// It asserts that a refusal wraps wechat.ErrDecrypt; that a resource opens
// only with AEAD_AES_256_GCM (or no algorithm named) and a 12-byte nonce; and
// that what opens seals back, with the same nonce and associated data, to the
// very ciphertext bytes that came in: GCM is deterministic for a given key
// and nonce, so anything else means the decryption read other bytes than the
// ones authenticated.
func FuzzDecryptResource(f *testing.F) {
	vs := wechattest.Load(f)
	var in struct{ Resource v3.Resource }
	vs.ByID(f, "v3_notification_refund_resource").Decode(f, "inputs", &in)
	key := vs.Keys.V3.APIv3Key
	r := in.Resource
	f.Add(r.Algorithm, r.Nonce, r.AssociatedData, r.Ciphertext)
	f.Fuzz(func(t *testing.T, algorithm, nonce, associatedData, ciphertext string) {
		plain, err := v3.DecryptResource(key, v3.Resource{Algorithm: algorithm, Nonce: nonce,
			AssociatedData: associatedData, Ciphertext: ciphertext})
		if err != nil {
			if !errors.Is(err, wechat.ErrDecrypt) {
				t.Fatalf("refusal %v does not wrap ErrDecrypt", err)
			}
			return
		}
		if algorithm != "" && algorithm != v3.AlgorithmAEADAES256GCM || len(nonce) != 12 {
			t.Fatalf("opened a resource with algorithm %q and a nonce of %d bytes", algorithm, len(nonce))
		}
		sent, err := base64.StdEncoding.DecodeString(ciphertext)
		if err != nil {
			t.Fatalf("opened a ciphertext that is not base64: %v", err)
		}
		again, err := v3.EncryptResource(key, nonce, associatedData, "", plain)
		if err != nil {
			t.Fatal(err)
		}
		back, err := base64.StdEncoding.DecodeString(again.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, sent) {
			t.Fatalf("plaintext %q seals to %x, but %x came in", plain, back, sent)
		}
	})
}

// FuzzTransactionIdentity reads arbitrary JSON as a v3 transaction, direct
// or partner, and checks what Identity makes of it: the merchant number and
// app of the shape it came in, and the payer under the app the order was in
// (sub_openid exactly when there is a sub_appid), never one field of one
// shape mixed into the other.
func FuzzTransactionIdentity(f *testing.F) {
	f.Add([]byte(`{"appid":"wxa","mchid":"1","payer":{"openid":"o"}}`))
	f.Add([]byte(`{"sp_appid":"wxs","sp_mchid":"1","sub_appid":"wxb","sub_mchid":"2","payer":{"sp_openid":"o1","sub_openid":"o2"}}`))
	f.Add([]byte(`{"sp_appid":"wxs","sp_mchid":"1","sub_mchid":"2","payer":{"sp_openid":"o1"}}`))
	f.Add([]byte(`{"appid":"wxa","sp_mchid":"1","payer":{"openid":"o","sub_openid":"o2"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var tr v3.Transaction
		if json.Unmarshal(raw, &tr) != nil {
			return
		}
		id := tr.Identity()
		partner := tr.SpMchID != "" || tr.SubMchID != "" || tr.SpAppID != "" || tr.SubAppID != "" || tr.Payer.SpOpenID != "" || tr.Payer.SubOpenID != ""
		want := v3.Identity{MchID: tr.MchID, AppID: tr.AppID, OpenID: tr.Payer.OpenID}
		if partner {
			want = v3.Identity{MchID: tr.SpMchID, SubMchID: tr.SubMchID, AppID: tr.SpAppID, SubAppID: tr.SubAppID, OpenID: tr.Payer.SpOpenID}
			if tr.SubAppID != "" {
				want.OpenID = tr.Payer.SubOpenID
			}
		}
		if id != want {
			t.Fatalf("Identity of %s = %+v, want %+v", raw, id, want)
		}
	})
}
