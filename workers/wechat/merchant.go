package wechat

import (
	"bytes"
	"cmp"
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

// Merchant is one WeChat Pay merchant that takes orders, together with the
// apps (Official Accounts, mini-programs) its payers pay in. It carries every
// key the protocols need; only the server holds it, and none of its secrets
// may enter an event or a log.
//
// A sub-merchant of a service provider (服务商模式, Kind MerchantSub) holds
// its provider's MchID and keys, since every call and signature in partner
// mode is the provider's, plus its own SubMchID; the clients then call the
// partner APIs.
type Merchant struct {
	// Name is wxflow's own short name for the merchant; it appears in
	// notification URLs (/wechat/notify/<Name>/…) and in order rows.
	Name string
	// Kind is direct, provider or sub (MerchantDirect when empty).
	Kind MerchantKind
	// AppID is the merchant's first app (Apps[0]): what a caller that names
	// no app gets. Kept for single-app deployments.
	AppID string
	// AppSecret authenticates AppID to api.weixin.qq.com.
	AppSecret Secret
	// Apps are the merchant's own apps; for a sub-merchant, the apps bound
	// to its SubMchID (sub_appid).
	Apps []App
	// MchID is the merchant number (商户号); for a sub-merchant, its
	// provider's (sp_mchid), which signs and is named in every call.
	MchID string
	// SubMchID is a sub-merchant's own number (sub_mchid); empty otherwise.
	SubMchID string
	// Provider is a sub-merchant's provider, by wxflow name; empty otherwise.
	Provider string
	// SpApps are a sub-merchant's provider's apps (sp_appid): a payer in one
	// of them pays with sp_openid; SpApps[0] is the sp_appid of every call.
	SpApps []App
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
	attrs := []slog.Attr{slog.String("name", m.Name), slog.String("appid", m.AppID), slog.String("mchid", m.MchID)}
	if m.SubMchID != "" {
		attrs = append(attrs, slog.String("sub_mchid", m.SubMchID), slog.String("provider", m.Provider))
	}
	return slog.GroupValue(attrs...)
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

// MerchantConfig is the JSON shape of merchant.json. A direct merchant or a
// provider has its keys beside it; a sub-merchant has only Kind, Provider,
// SubMchID and Apps (its provider's keys sign everything).
type MerchantConfig struct {
	// Kind is "direct" (the default), "provider" or "sub".
	Kind MerchantKind `json:"kind,omitempty"`
	// AppID and AppSecret are the one app of a single-app merchant (the
	// layout before Apps): an app of any kind.
	AppID     string      `json:"appid,omitempty"`
	AppSecret string      `json:"appsecret,omitempty"`
	Apps      []AppConfig `json:"apps,omitempty"`
	MchID     string      `json:"mchid,omitempty"`
	// Provider (a sub-merchant's provider, by wxflow name) and SubMchID.
	Provider             string `json:"provider,omitempty"`
	SubMchID             string `json:"sub_mchid,omitempty"`
	APIKey               string `json:"api_key,omitempty"`
	APIv3Key             string `json:"api_v3_key,omitempty"`
	SerialNo             string `json:"merchant_serial_no,omitempty"`
	WechatPayPublicKeyID string `json:"wechatpay_public_key_id,omitempty"`
}

// AppConfig is one app in merchant.json.
type AppConfig struct {
	AppID     string  `json:"appid"`
	AppSecret string  `json:"appsecret"`
	Kind      AppKind `json:"kind"`
}

// ErrMerchantConfig reports a missing or invalid merchant key file or field.
var ErrMerchantConfig = errors.New("wechat: invalid merchant configuration")

// LoadMerchant reads a merchant key folder (see [MerchantFile] and its
// siblings) of a direct merchant or a provider and returns it, named name.
// A sub-merchant's folder holds no keys: [LoadRegistry] loads it with its
// provider's.
func LoadMerchant(name, dir string) (*Merchant, error) {
	cfg, err := ReadMerchantConfig(dir)
	if err != nil {
		return nil, err
	}
	if cfg.Kind == MerchantSub {
		return nil, fmt.Errorf("%w: %s is a sub-merchant: it is loaded with its provider (LoadRegistry)", ErrMerchantConfig, name)
	}
	m, err := merchantOf(name, cfg)
	if err != nil {
		return nil, err
	}
	if err := m.loadKeys(dir, cfg); err != nil {
		return nil, err
	}
	return m, m.Validate()
}

// ReadMerchantConfig reads dir's merchant.json, refusing unknown fields (a
// misspelt "sub_mchid" must not silently make a direct merchant).
func ReadMerchantConfig(dir string) (MerchantConfig, error) {
	var cfg MerchantConfig
	raw, err := os.ReadFile(filepath.Join(dir, MerchantFile))
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%w: %s: %w", ErrMerchantConfig, MerchantFile, err)
	}
	return cfg, nil
}

// merchantOf makes the Merchant of cfg without its keys.
func merchantOf(name string, cfg MerchantConfig) (*Merchant, error) {
	m := &Merchant{
		Name: name, Kind: cmp.Or(cfg.Kind, MerchantDirect), MchID: cfg.MchID, SubMchID: cfg.SubMchID, Provider: cfg.Provider,
		APIKey: Secret(cfg.APIKey), APIv3Key: Secret(cfg.APIv3Key), SerialNo: cfg.SerialNo,
		WechatPayPublicKeyID: cfg.WechatPayPublicKeyID,
	}
	switch m.Kind {
	case MerchantDirect, MerchantProvider:
		if cfg.Provider != "" || cfg.SubMchID != "" {
			return nil, fmt.Errorf("%w: provider and sub_mchid are for kind %q only", ErrMerchantConfig, MerchantSub)
		}
	case MerchantSub:
		if cfg.Provider == "" || cfg.SubMchID == "" {
			return nil, fmt.Errorf("%w: a sub-merchant needs provider and sub_mchid", ErrMerchantConfig)
		}
		if cfg.MchID != "" || cfg.APIKey != "" || cfg.APIv3Key != "" || cfg.SerialNo != "" || cfg.WechatPayPublicKeyID != "" {
			return nil, fmt.Errorf("%w: a sub-merchant has no mchid or keys of its own: its provider's sign every call", ErrMerchantConfig)
		}
	default:
		return nil, fmt.Errorf("%w: kind %q: want %s, %s or %s", ErrMerchantConfig, cfg.Kind, MerchantDirect, MerchantProvider, MerchantSub)
	}
	if cfg.AppID != "" {
		if len(cfg.Apps) > 0 {
			return nil, fmt.Errorf("%w: give either appid or apps, not both", ErrMerchantConfig)
		}
		m.Apps = []App{{AppID: cfg.AppID, AppSecret: Secret(cfg.AppSecret)}}
	}
	seen := map[string]bool{}
	for i, a := range cfg.Apps {
		switch {
		case a.AppID == "":
			return nil, fmt.Errorf("%w: apps[%d]: appid is empty", ErrMerchantConfig, i)
		case seen[a.AppID]:
			return nil, fmt.Errorf("%w: apps[%d]: appid %s twice", ErrMerchantConfig, i, a.AppID)
		case !a.Kind.valid():
			return nil, fmt.Errorf("%w: apps[%d] (%s): kind %q: want %s, %s or %s", ErrMerchantConfig, i, a.AppID, a.Kind,
				AppOfficialAccount, AppMiniProgram, AppMobile)
		}
		seen[a.AppID] = true
		m.Apps = append(m.Apps, App{AppID: a.AppID, AppSecret: Secret(a.AppSecret), Kind: a.Kind})
	}
	if len(m.Apps) > 0 {
		m.AppID, m.AppSecret = m.Apps[0].AppID, m.Apps[0].AppSecret
	}
	return m, nil
}

// loadKeys reads the key files of a direct merchant or a provider.
func (m *Merchant) loadKeys(dir string, cfg MerchantConfig) error {
	keyPEM, err := os.ReadFile(filepath.Join(dir, PrivateKeyFile))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	if m.PrivateKey, err = ParseRSAPrivateKey(keyPEM); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMerchantConfig, PrivateKeyFile, err)
	}
	if m.signer, err = newSigner(m.PrivateKey); err != nil {
		return err
	}
	m.signerKey = m.PrivateKey
	// The client certificate: the PEM pair, or else the .p12 (password = mchid).
	if certPEM, err := os.ReadFile(filepath.Join(dir, CertificateFile)); err == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("%w: %s does not go with %s: %w", ErrMerchantConfig, CertificateFile, PrivateKeyFile, err)
		}
		m.Certificate = &cert
	} else if p12, perr := os.ReadFile(filepath.Join(dir, PKCS12File)); perr == nil {
		if m.Certificate, err = CertificateFromPKCS12(p12, cfg.MchID); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMerchantConfig, PKCS12File, err)
		}
		if pub, ok := m.Certificate.PrivateKey.(*rsa.PrivateKey); !ok || !pub.PublicKey.Equal(&m.PrivateKey.PublicKey) {
			return fmt.Errorf("%w: %s does not go with %s", ErrMerchantConfig, PKCS12File, PrivateKeyFile)
		}
	} else {
		return fmt.Errorf("%w: neither %s nor %s: %w", ErrMerchantConfig, CertificateFile, PKCS12File, err)
	}
	if leaf, err := x509.ParseCertificate(m.Certificate.Certificate[0]); err == nil {
		if got := strings.TrimLeft(strings.ToUpper(leaf.SerialNumber.Text(16)), "0"); got != strings.TrimLeft(strings.ToUpper(m.SerialNo), "0") {
			return fmt.Errorf("%w: merchant_serial_no %s is not the serial of the certificate (%s)", ErrMerchantConfig, m.SerialNo, got)
		}
	}
	if m.PlatformCertificates, err = loadPlatformCertificates(dir); err != nil {
		return fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, WechatPayPublicKeyFile))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	if m.WechatPayPublicKey, err = ParseRSAPublicKey(pubPEM); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMerchantConfig, WechatPayPublicKeyFile, err)
	}
	return nil
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
