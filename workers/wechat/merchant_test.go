package wechat_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

func TestLoadMerchantFromPKCS12(t *testing.T) {
	dir := t.TempDir()
	keys, err := sim.EnsureKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, wechat.CertificateFile)); err != nil {
		t.Fatal(err)
	}
	m, err := wechat.LoadMerchant("p12", dir)
	if err != nil {
		t.Fatalf("with only the .p12: %v", err)
	}
	if m.Certificate == nil || m.Certificate.Leaf == nil ||
		!strings.EqualFold(m.Certificate.Leaf.SerialNumber.Text(16), strings.TrimLeft(keys.Merchant.SerialNo, "0")) {
		t.Fatalf("certificate from the .p12 does not match the merchant serial %s", keys.Merchant.SerialNo)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, wechat.PKCS12File))
	if _, err := wechat.CertificateFromPKCS12(raw, "wrong"); err == nil {
		t.Fatal("a wrong .p12 password was accepted")
	}
}

func TestMerchantNeverPrintsSecrets(t *testing.T) {
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := keys.Merchant
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("merchant", "m", *m, "secret", m.APIKey)
	printed := fmt.Sprintf("%v %+v %s %#v", m.AppSecret, m.APIKey, m.APIv3Key, m.APIKey) + logs.String()
	for _, secret := range []wechat.Secret{m.AppSecret, m.APIKey, m.APIv3Key} {
		if strings.Contains(printed, string(secret)) {
			t.Fatalf("a secret was printed: %s", printed)
		}
	}
}

func TestVerificationKeyByPlatformCertificate(t *testing.T) {
	dir := t.TempDir()
	if _, err := sim.EnsureKeys(dir); err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x5157F09EFDC096DE), Subject: pkix.Name{CommonName: "Tenpay.com Root CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err := os.WriteFile(filepath.Join(dir, wechat.PlatformCertificatePrefix+"1.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := wechat.LoadMerchant("m", dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		serial string
		want   *rsa.PublicKey
	}{
		{m.WechatPayPublicKeyID, m.WechatPayPublicKey},
		{"5157F09EFDC096DE", &key.PublicKey},
		{"5157f09efdc096de", &key.PublicKey},
		{"PUB_KEY_ID_0000", nil},
		{"", nil},
	}
	for _, tc := range tests {
		got, ok := m.VerificationKey(tc.serial)
		if ok != (tc.want != nil) || ok && !got.Equal(tc.want) {
			t.Errorf("serial %q: key found %v", tc.serial, ok)
		}
	}
}
