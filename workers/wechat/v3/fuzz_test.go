package v3_test

import (
	"bytes"
	"encoding/base64"
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
