package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/wxflow/wxflow/workers/wechat"
)

// Files only the simulator holds, beside the merchant's own (wechat.MerchantFile …).
const (
	WechatPayPrivateKeyFile = "wechatpay_private_key.pem" // WeChat's signing key: never on a real merchant's disk
	CAFile                  = "sim_ca.pem"                // trust this to reach the simulator over HTTPS
	CAKeyFile               = "sim_ca_key.pem"
)

// Keys is the key material of a simulated WeChat and its one merchant.
type Keys struct {
	Merchant     *wechat.Merchant
	WechatPayKey *rsa.PrivateKey
	CA           *x509.Certificate
	caKey        *rsa.PrivateKey
	Server       tls.Certificate
}

// EnsureKeys creates test key material in dir on first use and loads it on
// every later one, so a merchant configured from dir keeps working across
// restarts. Keys are 0600. The returned merchant is named "default".
func EnsureKeys(dir string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, wechat.MerchantFile)); errors.Is(err, os.ErrNotExist) {
		if err := createKeys(dir); err != nil {
			return nil, fmt.Errorf("sim: create keys in %s: %w", dir, err)
		}
	}
	return loadKeys(dir)
}

func loadKeys(dir string) (*Keys, error) {
	m, err := wechat.LoadMerchant("default", dir)
	if err != nil {
		return nil, err
	}
	k := &Keys{Merchant: m}
	raw, err := os.ReadFile(filepath.Join(dir, WechatPayPrivateKeyFile))
	if err != nil {
		return nil, err
	}
	if k.WechatPayKey, err = wechat.ParseRSAPrivateKey(raw); err != nil {
		return nil, err
	}
	if raw, err = os.ReadFile(filepath.Join(dir, CAFile)); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("sim: no CA certificate")
	}
	if k.CA, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, err
	}
	if raw, err = os.ReadFile(filepath.Join(dir, CAKeyFile)); err != nil {
		return nil, err
	}
	if k.caKey, err = wechat.ParseRSAPrivateKey(raw); err != nil {
		return nil, err
	}
	k.Server, err = k.serverCertificate()
	return k, err
}

// serverCertificate issues a fresh loopback server certificate from the CA.
func (k *Keys) serverCertificate() (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "wxflow WeChat simulator"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.CA, &key.PublicKey, k.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, k.CA.Raw}, PrivateKey: key}, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n.Add(n, big.NewInt(1))
}

func createKeys(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "wxflow WeChat simulator test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	merchantKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	serial := randomSerial()
	mchID := fmt.Sprintf("19%08d", serial.Int64()%1e8)
	certTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: mchID, Organization: []string{"wxflow test merchant"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, certTmpl, ca, &merchantKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	cert, _ := x509.ParseCertificate(certDER)
	wxKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	p12, err := pkcs12.Modern.Encode(merchantKey, cert, nil, mchID)
	if err != nil {
		return err
	}
	cfg := wechat.MerchantConfig{
		AppID:                "wx" + randomHex(8),
		AppSecret:            randomHex(16),
		MchID:                mchID,
		APIKey:               randomAlnum(32),
		APIv3Key:             randomAlnum(32),
		SerialNo:             strings.ToUpper(hex.EncodeToString(serial.Bytes())),
		WechatPayPublicKeyID: "PUB_KEY_ID_" + randomDigits(34),
	}
	mj, _ := json.MarshalIndent(cfg, "", "  ")
	pkcs8 := func(k *rsa.PrivateKey) []byte {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	pub, _ := x509.MarshalPKIXPublicKey(&wxKey.PublicKey)
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{wechat.PrivateKeyFile, pkcs8(merchantKey), 0o600},
		{wechat.CertificateFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644},
		{wechat.PKCS12File, p12, 0o600},
		{wechat.WechatPayPublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644},
		{WechatPayPrivateKeyFile, pkcs8(wxKey), 0o600},
		{CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{CAKeyFile, pkcs8(caKey), 0o600},
		{wechat.MerchantFile, append(mj, '\n'), 0o600}, // last: its presence means "all written"
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func randomFrom(alphabet string, n int) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func randomAlnum(n int) string {
	return randomFrom("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", n)
}
func randomDigits(n int) string { return randomFrom("0123456789", n) }
