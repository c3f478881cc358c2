package wechat_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// loadedMerchant is a merchant read by LoadMerchant from keys the simulator makes.
func loadedMerchant(t testing.TB) *wechat.Merchant {
	t.Helper()
	dir := t.TempDir()
	if _, err := sim.EnsureKeys(dir); err != nil {
		t.Fatal(err)
	}
	m, err := wechat.LoadMerchant("m", dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignerSignsAsGo: the merchant's signer (Go's crypto/rsa, or OpenSSL
// in a build with the openssl tag) makes byte for byte the signature Go's
// crypto/rsa makes (PKCS#1 v1.5 is deterministic), each verifying with the
// merchant's public key.
func TestSignerSignsAsGo(t *testing.T) {
	m := loadedMerchant(t)
	s := m.Signer()
	if pub, ok := s.Public().(*rsa.PublicKey); !ok || !pub.Equal(&m.PrivateKey.PublicKey) {
		t.Fatalf("signer's public key %T is not the merchant's", s.Public())
	}
	t.Logf("signer: %s", wechat.SignerBackend())
	for i := range 20 {
		sum := sha256.Sum256(fmt.Appendf(nil, "POST\n/v3/pay/transactions/jsapi\n%d\nNONCE\n{}\n", i))
		got, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		want, err := rsa.SignPKCS1v15(nil, m.PrivateKey, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("message %d: the %s signature differs from Go's", i, wechat.SignerBackend())
		}
		if err := rsa.VerifyPKCS1v15(&m.PrivateKey.PublicKey, crypto.SHA256, sum[:], got); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Sign(rand.Reader, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}); wechat.SignerBackend() == "openssl" && err == nil {
		t.Error("the OpenSSL signer signed PSS: it promises PKCS#1 v1.5 only")
	}
	if (&wechat.Merchant{PrivateKey: m.PrivateKey}).Signer() != crypto.Signer(m.PrivateKey) {
		t.Error("a Merchant not made by LoadMerchant does not sign with its Go key")
	}
}

// BenchmarkSigner: one SHA256withRSA-2048 signature by this build's signer
// (go test -bench Signer; add -tags openssl for OpenSSL's), beside Go's.
func BenchmarkSigner(b *testing.B) {
	m := loadedMerchant(b)
	sum := sha256.Sum256([]byte("message"))
	for _, c := range []struct {
		name string
		s    crypto.Signer
	}{{"go", m.PrivateKey}, {wechat.SignerBackend(), m.Signer()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.s.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
