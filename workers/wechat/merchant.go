package wechat

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// Secret is a string that must never be printed: its String, GoString and
// LogValue methods redact it, so a Merchant passed to fmt or slog by mistake
// leaks nothing (money rule 5). Use string(s) where the raw value is needed.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret for %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue redacts the secret for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Merchant is one WeChat Pay merchant together with the app (Official Account
// or mini-program) it collects for. It carries every key the protocols need;
// only the server holds it, and none of its secrets may enter an event or a log.
type Merchant struct {
	// Name is wxflow's own short name for the merchant; it appears in
	// notification URLs (/wechat/notify/<Name>/…) and in order rows.
	Name string
	// AppID is the Official Account or mini-program AppID bound to MchID.
	AppID string
	// AppSecret authenticates the app to api.weixin.qq.com.
	AppSecret Secret
	// MchID is the merchant number (商户号).
	MchID string
	// APIKey is the 32-character API v2 key (商户API密钥).
	APIKey Secret
	// APIv3Key is the 32-byte API v3 key, used for AES-256-GCM.
	APIv3Key Secret
	// SerialNo is the hex serial of the merchant API certificate.
	SerialNo string
	// PrivateKey is the merchant API private key (apiclient_key.pem): it signs
	// v3 requests and v3 front-end paySign values.
	PrivateKey *rsa.PrivateKey
	// Certificate is the merchant client certificate and key for the mutual
	// TLS that v2 refunds require.
	Certificate *tls.Certificate
	// WechatPayPublicKeyID names the WeChat Pay public key ("PUB_KEY_ID_…"),
	// as sent in the Wechatpay-Serial header.
	WechatPayPublicKeyID string
	// WechatPayPublicKey verifies v3 responses and notifications.
	WechatPayPublicKey *rsa.PublicKey
	// PlatformCertificates are the older WeChat Pay platform certificates, by
	// serial (upper-case hex), still accepted while a merchant migrates to the
	// public key: WeChat then signs with either, and names which in
	// Wechatpay-Serial. Loaded from platform_cert_*.pem.
	PlatformCertificates map[string]*x509.Certificate

	signer    crypto.Signer   // PrivateKey's signer in this build (Signer); set by LoadMerchant
	signerKey *rsa.PrivateKey // the key signer was made for: a copy given another key signs with that one
}

// VerificationKey returns the key that verifies a v3 signature whose
// Wechatpay-Serial is serial: the WeChat Pay public key by its id, or a
// platform certificate by its serial. An unknown serial has no key.
func (m *Merchant) VerificationKey(serial string) (*rsa.PublicKey, bool) {
	if serial != "" && serial == m.WechatPayPublicKeyID && m.WechatPayPublicKey != nil {
		return m.WechatPayPublicKey, true
	}
	if c, ok := m.PlatformCertificates[strings.ToUpper(serial)]; ok {
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
			return k, true
		}
	}
	return nil, false
}

// CertificateFromPKCS12 reads the merchant's apiclient_cert.p12, whose
// password is the mchid.
func CertificateFromPKCS12(data []byte, password string) (*tls.Certificate, error) {
	key, cert, err := pkcs12.Decode(data, password)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// PlatformCertificatePrefix names platform certificate files: platform_cert_<anything>.pem.
const PlatformCertificatePrefix = "platform_cert_"

func loadPlatformCertificates(dir string) (map[string]*x509.Certificate, error) {
	files, err := filepath.Glob(filepath.Join(dir, PlatformCertificatePrefix+"*.pem"))
	if err != nil || len(files) == 0 {
		return nil, err
	}
	out := map[string]*x509.Certificate{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", f)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[strings.ToUpper(c.SerialNumber.Text(16))] = c
	}
	return out, nil
}

// LogValue lets a Merchant be logged safely: identifiers only.
func (m Merchant) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", m.Name), slog.String("appid", m.AppID), slog.String("mchid", m.MchID))
}

// Key file names in a merchant key folder. The simulator writes this layout on
// its first start and every wxflow process reads it with [LoadMerchant]; it is
// also what a real merchant downloads from the merchant platform, renamed.
const (
	MerchantFile           = "merchant.json"
	PrivateKeyFile         = "apiclient_key.pem"
	CertificateFile        = "apiclient_cert.pem"
	PKCS12File             = "apiclient_cert.p12"
	WechatPayPublicKeyFile = "wechatpay_public_key.pem"
)

// MerchantConfig is the JSON shape of merchant.json.
type MerchantConfig struct {
	AppID                string `json:"appid"`
	AppSecret            string `json:"appsecret"`
	MchID                string `json:"mchid"`
	APIKey               string `json:"api_key"`
	APIv3Key             string `json:"api_v3_key"`
	SerialNo             string `json:"merchant_serial_no"`
	WechatPayPublicKeyID string `json:"wechatpay_public_key_id"`
}

// ErrMerchantConfig reports a missing or invalid merchant key file or field.
var ErrMerchantConfig = errors.New("wechat: invalid merchant configuration")

// LoadMerchant reads a merchant key folder (see [MerchantFile] and its
// siblings) and returns the merchant named name.
func LoadMerchant(name, dir string) (*Merchant, error) {
	raw, err := os.ReadFile(filepath.Join(dir, MerchantFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	var cfg MerchantConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, MerchantFile, err)
	}
	m := &Merchant{
		Name: name, AppID: cfg.AppID, AppSecret: Secret(cfg.AppSecret), MchID: cfg.MchID,
		APIKey: Secret(cfg.APIKey), APIv3Key: Secret(cfg.APIv3Key), SerialNo: cfg.SerialNo,
		WechatPayPublicKeyID: cfg.WechatPayPublicKeyID,
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, PrivateKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	if m.PrivateKey, err = ParseRSAPrivateKey(keyPEM); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, PrivateKeyFile, err)
	}
	if m.signer, err = newSigner(m.PrivateKey); err != nil {
		return nil, err
	}
	m.signerKey = m.PrivateKey
	// The client certificate: the PEM pair, or else the .p12 (password = mchid).
	if certPEM, err := os.ReadFile(filepath.Join(dir, CertificateFile)); err == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, CertificateFile, err)
		}
		m.Certificate = &cert
	} else if p12, perr := os.ReadFile(filepath.Join(dir, PKCS12File)); perr == nil {
		if m.Certificate, err = CertificateFromPKCS12(p12, cfg.MchID); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, PKCS12File, err)
		}
	} else {
		return nil, fmt.Errorf("%w: neither %s nor %s: %w", ErrMerchantConfig, CertificateFile, PKCS12File, err)
	}
	if m.PlatformCertificates, err = loadPlatformCertificates(dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, WechatPayPublicKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	if m.WechatPayPublicKey, err = ParseRSAPublicKey(pubPEM); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, WechatPayPublicKeyFile, err)
	}
	return m, m.Validate()
}

// Validate reports the first missing field that every protocol needs.
func (m *Merchant) Validate() error {
	switch {
	case m.AppID == "":
		return fmt.Errorf("%w: appid is empty", ErrMerchantConfig)
	case m.MchID == "":
		return fmt.Errorf("%w: mchid is empty", ErrMerchantConfig)
	case len(m.APIKey) != 32:
		return fmt.Errorf("%w: api_key must be 32 characters, got %d", ErrMerchantConfig, len(m.APIKey))
	case len(m.APIv3Key) != 32:
		return fmt.Errorf("%w: api_v3_key must be 32 bytes, got %d", ErrMerchantConfig, len(m.APIv3Key))
	}
	return nil
}

// ParseRSAPrivateKey decodes a PEM RSA private key in PKCS#8 ("PRIVATE KEY",
// what the merchant platform ships) or PKCS#1 ("RSA PRIVATE KEY") form.
func ParseRSAPrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("not an RSA key: %T", k)
	}
	return rk, nil
}

// ParseRSAPublicKey decodes a PEM RSA public key ("PUBLIC KEY", PKIX) or the
// public key of a PEM certificate.
func ParseRSAPublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	if block.Type == "CERTIFICATE" {
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = c.PublicKey
		}
	} else {
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("not an RSA key: %T", k)
	}
	return rk, nil
}
