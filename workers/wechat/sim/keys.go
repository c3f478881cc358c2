package sim

import (
	"cmp"
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

// Keys is the key material of a simulated WeChat and the merchants it serves.
type Keys struct {
	// Merchant is the first merchant ("default" in the single-merchant layout):
	// what a caller that names no merchant gets.
	Merchant *wechat.Merchant
	// Registry is every merchant, provider and sub-merchant, as wxflow loads
	// them from KeysDir (a registry of Merchant alone in the single layout).
	Registry *wechat.Registry
	// WechatPayKey is WeChat Pay's signing key for Merchant.
	WechatPayKey *rsa.PrivateKey
	// WechatPayKeys is WeChat Pay's signing key for each direct merchant and
	// provider, by mchid: WeChat keys each merchant apart.
	WechatPayKeys map[string]*rsa.PrivateKey
	CA            *x509.Certificate
	caKey         *rsa.PrivateKey
	Server        tls.Certificate
}

// EnsureKeys creates test key material in dir on first use and loads it on
// every later one, so a merchant configured from dir keeps working across
// restarts. Keys are 0600. The returned merchant is named "default".
func EnsureKeys(dir string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, wechat.MerchantFile)); errors.Is(err, os.ErrNotExist) {
		if err := createCA(dir); err != nil {
			return nil, fmt.Errorf("sim: create keys in %s: %w", dir, err)
		}
		if err := createMerchant(dir, dir, MerchantSpec{Name: "default", Kind: wechat.MerchantDirect}, nil); err != nil {
			return nil, fmt.Errorf("sim: create keys in %s: %w", dir, err)
		}
	}
	k, err := loadCA(dir, true)
	if err != nil {
		return nil, err
	}
	m, err := wechat.LoadMerchant("default", dir)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, WechatPayPrivateKeyFile))
	if err != nil {
		return nil, err
	}
	if k.WechatPayKey, err = wechat.ParseRSAPrivateKey(raw); err != nil {
		return nil, err
	}
	k.Merchant, k.Registry = m, wechat.NewRegistry(m)
	k.WechatPayKeys = map[string]*rsa.PrivateKey{m.MchID: k.WechatPayKey}
	return k, nil
}

// MerchantSpec describes one merchant the simulator serves (Config.Merchants).
type MerchantSpec struct {
	// Name is wxflow's name of the merchant and its folder in KeysDir.
	Name string
	// Kind is direct (default), provider or sub.
	Kind wechat.MerchantKind
	// Provider is a sub-merchant's provider, by Name.
	Provider string
	// Apps are the kinds of the merchant's own apps, one app each.
	Apps []wechat.AppKind
}

// DevMerchants are the merchants of a development deployment: two direct
// merchants, and a provider with two sub-merchants, one of which has no app
// of its own (its payers pay in the provider's Official Account).
func DevMerchants() []MerchantSpec {
	return []MerchantSpec{
		{Name: "default", Kind: wechat.MerchantDirect, Apps: []wechat.AppKind{wechat.AppOfficialAccount, wechat.AppMiniProgram}},
		{Name: "second", Kind: wechat.MerchantDirect, Apps: []wechat.AppKind{wechat.AppOfficialAccount}},
		{Name: "provider", Kind: wechat.MerchantProvider, Apps: []wechat.AppKind{wechat.AppOfficialAccount}},
		{Name: "provider-sub1", Kind: wechat.MerchantSub, Provider: "provider", Apps: []wechat.AppKind{wechat.AppMiniProgram}},
		{Name: "provider-sub2", Kind: wechat.MerchantSub, Provider: "provider"},
	}
}

// ErrMerchantSpec reports a Config.Merchants that cannot be served.
var ErrMerchantSpec = errors.New("sim: invalid merchant spec")

// EnsureMerchants creates, on first use, the folder of each merchant of
// specs that has none (dir/<name>/, the layout wechat.LoadRegistry reads,
// the CA at the top of dir) and loads them all. The first spec is
// Keys.Merchant; it must take orders (direct or sub).
func EnsureMerchants(dir string, specs []MerchantSpec) (*Keys, error) {
	if err := checkSpecs(specs); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); errors.Is(err, os.ErrNotExist) {
		if err := createCA(dir); err != nil {
			return nil, fmt.Errorf("sim: create CA in %s: %w", dir, err)
		}
	}
	k, err := loadCA(dir, true)
	if err != nil {
		return nil, err
	}
	subNos := map[string]bool{}
	for _, sp := range specs {
		if sp.Kind == wechat.MerchantSub {
			if cfg, err := wechat.ReadMerchantConfig(filepath.Join(dir, sp.Name)); err == nil {
				subNos[cfg.SubMchID] = true
			}
		}
	}
	for _, sp := range specs {
		sub := filepath.Join(dir, sp.Name)
		if _, err := os.Stat(filepath.Join(sub, wechat.MerchantFile)); errors.Is(err, os.ErrNotExist) {
			if err := createMerchant(dir, sub, sp, subNos); err != nil {
				return nil, fmt.Errorf("sim: create merchant %s: %w", sp.Name, err)
			}
		}
	}
	reg, err := wechat.LoadRegistry(dir, "")
	if err != nil {
		return nil, err
	}
	k.Registry, k.WechatPayKeys = reg, map[string]*rsa.PrivateKey{}
	for _, sp := range specs {
		if err := reg.Broken()[sp.Name]; err != nil {
			return nil, fmt.Errorf("sim: merchant %s: %w", sp.Name, err)
		}
	}
	for _, p := range append(reg.Merchants(), reg.Providers()...) {
		if p.Partner() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, p.Name, WechatPayPrivateKeyFile))
		if err != nil {
			return nil, err
		}
		if k.WechatPayKeys[p.MchID], err = wechat.ParseRSAPrivateKey(raw); err != nil {
			return nil, err
		}
	}
	if k.Merchant, err = reg.Merchant(specs[0].Name); err != nil {
		return nil, err
	}
	k.WechatPayKey = k.WechatPayKeys[k.Merchant.MchID]
	return k, nil
}

func checkSpecs(specs []MerchantSpec) error {
	kinds := map[string]wechat.MerchantKind{}
	for _, sp := range specs {
		if !wechat.ValidMerchantName(sp.Name) {
			return fmt.Errorf("%w: name %q", ErrMerchantSpec, sp.Name)
		}
		if _, dup := kinds[sp.Name]; dup {
			return fmt.Errorf("%w: %s twice", ErrMerchantSpec, sp.Name)
		}
		kinds[sp.Name] = cmp.Or(sp.Kind, wechat.MerchantDirect)
	}
	for i, sp := range specs {
		switch kinds[sp.Name] {
		case wechat.MerchantSub:
			if kinds[sp.Provider] != wechat.MerchantProvider {
				return fmt.Errorf("%w: %s: provider %q is not a provider here", ErrMerchantSpec, sp.Name, sp.Provider)
			}
		case wechat.MerchantProvider:
			if len(sp.Apps) == 0 {
				return fmt.Errorf("%w: provider %s needs an app (its sp_appid)", ErrMerchantSpec, sp.Name)
			}
			if i == 0 {
				return fmt.Errorf("%w: the first merchant takes orders: not a provider", ErrMerchantSpec)
			}
			fallthrough
		default:
			if sp.Provider != "" {
				return fmt.Errorf("%w: %s: only a sub-merchant has a provider", ErrMerchantSpec, sp.Name)
			}
			if kinds[sp.Name] == wechat.MerchantDirect && len(sp.Apps) == 0 {
				return fmt.Errorf("%w: direct merchant %s needs an app", ErrMerchantSpec, sp.Name)
			}
		}
	}
	return nil
}

// loadCA loads the simulator's CA from dir and, withServer, issues the
// server certificate.
func loadCA(dir string, withServer bool) (*Keys, error) {
	k := &Keys{}
	raw, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
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
	if withServer {
		k.Server, err = k.serverCertificate()
	}
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

func pkcs8(k *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

type keyFile struct {
	name string
	data []byte
	mode os.FileMode
}

func writeFiles(dir string, files []keyFile) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// createCA writes a fresh simulator CA in dir.
func createCA(dir string) error {
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
	// The key first: the certificate's presence means both are written.
	return writeFiles(dir, []keyFile{{CAKeyFile, pkcs8(caKey), 0o600},
		{CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644}})
}

// createMerchant writes the folder of one merchant: for a direct merchant or
// a provider its keys, certificate (from the CA in caDir) and WeChat Pay key
// pair; for a sub-merchant only merchant.json (a sub_mchid not in taken).
// The single layout (sp.Apps empty, direct) has one app of no kind.
func createMerchant(caDir, dir string, sp MerchantSpec, taken map[string]bool) error {
	k, err := loadCA(caDir, false)
	if err != nil {
		return err
	}
	var cfg wechat.MerchantConfig
	for _, kind := range sp.Apps {
		cfg.Apps = append(cfg.Apps, wechat.AppConfig{AppID: "wx" + randomHex(8), AppSecret: randomHex(16), Kind: kind})
	}
	if sp.Kind == wechat.MerchantSub {
		cfg.Kind, cfg.Provider = wechat.MerchantSub, sp.Provider
		for cfg.SubMchID == "" || taken[cfg.SubMchID] {
			cfg.SubMchID = "16" + randomDigits(8)
		}
		taken[cfg.SubMchID] = true
		mj, _ := json.MarshalIndent(cfg, "", "  ")
		return writeFiles(dir, []keyFile{{wechat.MerchantFile, append(mj, '\n'), 0o600}})
	}
	if len(sp.Apps) == 0 {
		cfg.AppID, cfg.AppSecret = "wx"+randomHex(8), randomHex(16)
	}
	if sp.Kind == wechat.MerchantProvider {
		cfg.Kind = wechat.MerchantProvider
	} else if len(sp.Apps) > 0 {
		cfg.Kind = wechat.MerchantDirect
	}
	merchantKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	serial := randomSerial()
	mchID := fmt.Sprintf("19%08d", new(big.Int).Mod(serial, big.NewInt(1e8)).Int64()) // 10 digits, as WeChat's
	certTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: mchID, Organization: []string{"wxflow test merchant"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, certTmpl, k.CA, &merchantKey.PublicKey, k.caKey)
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
	cfg.MchID, cfg.APIKey, cfg.APIv3Key = mchID, randomAlnum(32), randomAlnum(32)
	cfg.SerialNo = strings.ToUpper(hex.EncodeToString(serial.Bytes()))
	cfg.WechatPayPublicKeyID = "PUB_KEY_ID_" + randomDigits(34)
	mj, _ := json.MarshalIndent(cfg, "", "  ")
	pub, _ := x509.MarshalPKIXPublicKey(&wxKey.PublicKey)
	return writeFiles(dir, []keyFile{
		{wechat.PrivateKeyFile, pkcs8(merchantKey), 0o600},
		{wechat.CertificateFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644},
		{wechat.PKCS12File, p12, 0o600},
		{wechat.WechatPayPublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644},
		{WechatPayPrivateKeyFile, pkcs8(wxKey), 0o600},
		{wechat.MerchantFile, append(mj, '\n'), 0o600}, // last: its presence means "all written"
	})
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
