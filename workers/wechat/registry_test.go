package wechat_test

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// keySet is one merchant's key files, made once by the simulator and copied
// into every merchant folder that needs keys: RSA keys take a while to make,
// and a merchant's identity (mchid, apps) is in its merchant.json, not its keys.
type keySet struct {
	dir string
	cfg wechat.MerchantConfig // the simulator's: its keys' serial, api keys and public key id
}

func newKeySet(t *testing.T) keySet {
	t.Helper()
	dir := t.TempDir()
	if _, err := sim.EnsureKeys(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := wechat.ReadMerchantConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	return keySet{dir: dir, cfg: cfg}
}

// keyFiles are the files of a merchant folder besides merchant.json.
var keyFiles = []string{wechat.PrivateKeyFile, wechat.CertificateFile, wechat.PKCS12File, wechat.WechatPayPublicKeyFile}

// config is a merchant.json of kind with ks's keys, mchid and apps.
func (ks keySet) config(kind wechat.MerchantKind, mchid string, apps ...wechat.AppConfig) wechat.MerchantConfig {
	return wechat.MerchantConfig{Kind: kind, MchID: mchid, Apps: apps, APIKey: ks.cfg.APIKey, APIv3Key: ks.cfg.APIv3Key,
		SerialNo: ks.cfg.SerialNo, WechatPayPublicKeyID: ks.cfg.WechatPayPublicKeyID}
}

// put writes the merchant folder root/name: ks's key files and cfg as
// merchant.json (any JSON value, so that a test may write a typo).
func (ks keySet) put(t *testing.T, root, name string, cfg any) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range keyFiles {
		copyFile(t, filepath.Join(ks.dir, f), filepath.Join(dir, f))
	}
	writeJSON(t, filepath.Join(dir, wechat.MerchantFile), cfg)
}

// putSub writes a sub-merchant's folder: merchant.json only.
func putSub(t *testing.T, root, name string, cfg any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(root, name, wechat.MerchantFile), cfg)
}

func sub(provider, subMchID string, apps ...wechat.AppConfig) wechat.MerchantConfig {
	return wechat.MerchantConfig{Kind: wechat.MerchantSub, Provider: provider, SubMchID: subMchID, Apps: apps}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func app(id string, kind wechat.AppKind) wechat.AppConfig {
	return wechat.AppConfig{AppID: id, AppSecret: "secret-of-" + id, Kind: kind}
}

// The apps of the base folder.
const (
	shopOA = "wx00000000000000a1"
	shopMP = "wx00000000000000a2"
	spOA   = "wx00000000000000b1"
	spMP   = "wx00000000000000b2"
	cafeMP = "wx00000000000000c1"
	otherA = "wx00000000000000d1"
)

// base writes the folder every case starts from: a direct merchant (shop),
// a provider (sp) with two sub-merchants, one with an app of its own (cafe)
// and one without (kiosk), and a folder that is no merchant's (notes).
func base(t *testing.T, ks keySet) string {
	t.Helper()
	root := t.TempDir()
	ks.put(t, root, "shop", ks.config(wechat.MerchantDirect, "1900000001", app(shopOA, wechat.AppOfficialAccount), app(shopMP, wechat.AppMiniProgram)))
	ks.put(t, root, "sp", ks.config(wechat.MerchantProvider, "1900000002", app(spOA, wechat.AppOfficialAccount), app(spMP, wechat.AppMiniProgram)))
	putSub(t, root, "cafe", sub("sp", "1600000001", app(cafeMP, wechat.AppMiniProgram)))
	putSub(t, root, "kiosk", sub("sp", "1600000002"))
	if err := os.MkdirAll(filepath.Join(root, "notes"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "notes", "README"), "not a merchant")
	return root
}

// loadedNames are the registry's merchants and providers that loaded, sorted.
func loadedNames(r *wechat.Registry) []string {
	names := r.Names()
	for _, p := range r.Providers() {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// TestLoadRegistry: each way a merchant folder can be wrong breaks that
// merchant (and only the merchants that depend on it) with a message that
// says what to fix; every other merchant of the folder still loads.
func TestLoadRegistry(t *testing.T) {
	ks, other := newKeySet(t), newKeySet(t)
	everyone := []string{"cafe", "kiosk", "shop", "sp"}
	without := func(names ...string) []string {
		return slices.DeleteFunc(slices.Clone(everyone), func(n string) bool { return slices.Contains(names, n) })
	}
	direct := func(mchid string, apps ...wechat.AppConfig) wechat.MerchantConfig {
		return ks.config(wechat.MerchantDirect, mchid, apps...)
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T, root string)
		broken map[string]string // merchant → a part of its error
		loaded []string          // every merchant and provider that loads
	}{
		{name: "as it should be", setup: func(*testing.T, string) {}, loaded: everyone},
		{
			name: "a second direct merchant of the single-app layout",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009")
				c.AppID, c.AppSecret = otherA, "s"
				ks.put(t, root, "old", c)
			},
			loaded: append(slices.Clone(everyone), "old"),
		},
		{
			name: "missing private key",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				remove(t, filepath.Join(root, "bad", wechat.PrivateKeyFile))
			},
			broken: map[string]string{"bad": wechat.PrivateKeyFile + ": no such file"},
			loaded: everyone,
		},
		{
			name: "no client certificate at all",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				remove(t, filepath.Join(root, "bad", wechat.CertificateFile))
				remove(t, filepath.Join(root, "bad", wechat.PKCS12File))
			},
			broken: map[string]string{"bad": "neither apiclient_cert.pem nor apiclient_cert.p12"},
			loaded: everyone,
		},
		{
			name: "missing WeChat Pay public key",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				remove(t, filepath.Join(root, "bad", wechat.WechatPayPublicKeyFile))
			},
			broken: map[string]string{"bad": wechat.WechatPayPublicKeyFile + ": no such file"},
			loaded: everyone,
		},
		{
			name: "unreadable private key PEM",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				writeFile(t, filepath.Join(root, "bad", wechat.PrivateKeyFile), "-----BEGIN PRIVATE KEY-----\nbroken\n")
			},
			broken: map[string]string{"bad": wechat.PrivateKeyFile + ": no PEM block"},
			loaded: everyone,
		},
		{
			name: "unreadable WeChat Pay public key PEM",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				writeFile(t, filepath.Join(root, "bad", wechat.WechatPayPublicKeyFile), "PUB_KEY_ID_0114232020020000000000000000000000\n")
			},
			broken: map[string]string{"bad": wechat.WechatPayPublicKeyFile + ": no PEM block"},
			loaded: everyone,
		},
		{
			name: "unreadable certificate",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				writeFile(t, filepath.Join(root, "bad", wechat.CertificateFile), "not a certificate")
			},
			broken: map[string]string{"bad": "apiclient_cert.pem does not go with apiclient_key.pem"},
			loaded: everyone,
		},
		{
			name: "certificate of another private key",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				copyFile(t, filepath.Join(other.dir, wechat.PrivateKeyFile), filepath.Join(root, "bad", wechat.PrivateKeyFile))
			},
			broken: map[string]string{"bad": "apiclient_cert.pem does not go with apiclient_key.pem"},
			loaded: everyone,
		},
		{
			name: "PKCS#12 certificate of another private key",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct(ks.cfg.MchID, app(otherA, wechat.AppMobile))) // the .p12's password
				remove(t, filepath.Join(root, "bad", wechat.CertificateFile))
				copyFile(t, filepath.Join(other.dir, wechat.PrivateKeyFile), filepath.Join(root, "bad", wechat.PrivateKeyFile))
			},
			broken: map[string]string{"bad": "apiclient_cert.p12 does not go with apiclient_key.pem"},
			loaded: everyone,
		},
		{
			name: "PKCS#12 certificate whose password is not the mchid",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile)))
				remove(t, filepath.Join(root, "bad", wechat.CertificateFile))
			},
			broken: map[string]string{"bad": wechat.PKCS12File + ":"},
			loaded: everyone,
		},
		{
			name: "merchant_serial_no not the certificate's",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009", app(otherA, wechat.AppMobile))
				c.SerialNo = other.cfg.SerialNo
				ks.put(t, root, "bad", c)
			},
			broken: map[string]string{"bad": "merchant_serial_no " + other.cfg.SerialNo + " is not the serial of the certificate"},
			loaded: everyone,
		},
		{
			name: "api_key of the wrong length",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009", app(otherA, wechat.AppMobile))
				c.APIKey = c.APIKey[:31]
				ks.put(t, root, "bad", c)
			},
			broken: map[string]string{"bad": "api_key must be 32 characters, got 31"},
			loaded: everyone,
		},
		{
			name: "api_v3_key of the wrong length",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009", app(otherA, wechat.AppMobile))
				c.APIv3Key += "x"
				ks.put(t, root, "bad", c)
			},
			broken: map[string]string{"bad": "api_v3_key must be 32 bytes, got 33"},
			loaded: everyone,
		},
		{
			name: "a typo in merchant.json",
			setup: func(t *testing.T, root string) {
				putSub(t, root, "bad", map[string]any{"kind": "sub", "provider": "sp", "sub_mch_id": "1600000009"})
			},
			broken: map[string]string{"bad": `unknown field "sub_mch_id"`},
			loaded: everyone,
		},
		{
			name: "merchant.json that is not JSON",
			setup: func(t *testing.T, root string) {
				putSub(t, root, "bad", nil)
				writeFile(t, filepath.Join(root, "bad", wechat.MerchantFile), "{kind: sub}")
			},
			broken: map[string]string{"bad": "merchant.json: invalid character"},
			loaded: everyone,
		},
		{
			name: "unknown merchant kind",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", ks.config("partner", "1900000009", app(otherA, wechat.AppMobile)))
			},
			broken: map[string]string{"bad": `kind "partner": want direct, provider or sub`},
			loaded: everyone,
		},
		{
			name:   "unknown app kind",
			setup:  func(t *testing.T, root string) { ks.put(t, root, "bad", direct("1900000009", app(otherA, "h5"))) },
			broken: map[string]string{"bad": `apps[0] (` + otherA + `): kind "h5"`},
			loaded: everyone,
		},
		{
			name: "an app without appid",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app("", wechat.AppMobile)))
			},
			broken: map[string]string{"bad": "apps[0]: appid is empty"},
			loaded: everyone,
		},
		{
			name: "one app twice in a merchant",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "bad", direct("1900000009", app(otherA, wechat.AppMobile), app(otherA, wechat.AppMiniProgram)))
			},
			broken: map[string]string{"bad": "apps[1]: appid " + otherA + " twice"},
			loaded: everyone,
		},
		{
			name: "appid and apps both",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009", app(otherA, wechat.AppMobile))
				c.AppID = "wx00000000000000d2"
				ks.put(t, root, "bad", c)
			},
			broken: map[string]string{"bad": "give either appid or apps"},
			loaded: everyone,
		},
		{
			name:   "a direct merchant without an app",
			setup:  func(t *testing.T, root string) { ks.put(t, root, "bad", direct("1900000009")) },
			broken: map[string]string{"bad": "appid is empty"},
			loaded: everyone,
		},
		{
			name: "a direct merchant with a sub_mchid",
			setup: func(t *testing.T, root string) {
				c := direct("1900000009", app(otherA, wechat.AppMobile))
				c.SubMchID = "1600000009"
				ks.put(t, root, "bad", c)
			},
			broken: map[string]string{"bad": `provider and sub_mchid are for kind "sub" only`},
			loaded: everyone,
		},
		{
			name: "an appid bound to two merchants",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "shop2", direct("1900000009", app(shopMP, wechat.AppMiniProgram)))
			},
			broken: map[string]string{"shop": "appid " + shopMP + " belongs to shop and shop2", "shop2": "appid " + shopMP + " belongs to shop and shop2"},
			loaded: without("shop"),
		},
		{
			name: "a direct merchant with the app of a provider",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "shop2", direct("1900000009", app(spOA, wechat.AppOfficialAccount)))
			},
			broken: map[string]string{"shop2": "appid " + spOA + " belongs to shop2 and sp", "sp": "belongs to shop2 and sp", "cafe": "its provider sp is broken", "kiosk": "its provider sp is broken"},
			loaded: without("sp", "cafe", "kiosk"),
		},
		{
			name: "one mchid for two merchants",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "shop2", direct("1900000001", app(otherA, wechat.AppMobile)))
			},
			broken: map[string]string{"shop": "mchid 1900000001 belongs to shop and shop2", "shop2": "mchid 1900000001 belongs to shop and shop2"},
			loaded: without("shop"),
		},
		{
			name: "a direct merchant with the provider's mchid",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "shop2", direct("1900000002", app(otherA, wechat.AppMobile)))
			},
			broken: map[string]string{"shop2": "mchid 1900000002 belongs to shop2 and sp", "sp": "mchid 1900000002 belongs to shop2 and sp",
				"cafe": "its provider sp is broken: ", "kiosk": "its provider sp is broken: "},
			loaded: without("sp", "cafe", "kiosk"),
		},
		{
			name:   "one sub_mchid twice under a provider",
			setup:  func(t *testing.T, root string) { putSub(t, root, "bar", sub("sp", "1600000001")) },
			broken: map[string]string{"bar": "sub_mchid 1900000002/1600000001 belongs to bar and cafe", "cafe": "belongs to bar and cafe"},
			loaded: without("cafe"),
		},
		{
			name: "two sub-merchants with one app",
			setup: func(t *testing.T, root string) {
				putSub(t, root, "bar", sub("sp", "1600000009", app(cafeMP, wechat.AppMiniProgram)))
			},
			broken: map[string]string{"bar": "appid " + cafeMP + " belongs to bar and cafe", "cafe": "belongs to bar and cafe"},
			loaded: without("cafe"),
		},
		{
			name: "a sub-merchant listing its provider's app as its own",
			setup: func(t *testing.T, root string) {
				putSub(t, root, "bar", sub("sp", "1600000009", app(spOA, wechat.AppOfficialAccount)))
			},
			broken: map[string]string{"bar": "appid " + spOA + " is its provider's"},
			loaded: everyone,
		},
		{
			name:   "a sub-merchant of a missing provider",
			setup:  func(t *testing.T, root string) { putSub(t, root, "bar", sub("nope", "1600000009")) },
			broken: map[string]string{"bar": `provider "nope" is not a merchant of kind provider here`},
			loaded: everyone,
		},
		{
			name:   "a sub-merchant of a direct merchant",
			setup:  func(t *testing.T, root string) { putSub(t, root, "bar", sub("shop", "1600000009")) },
			broken: map[string]string{"bar": `provider "shop" is not a merchant of kind provider here`},
			loaded: everyone,
		},
		{
			name:  "a broken provider",
			setup: func(t *testing.T, root string) { remove(t, filepath.Join(root, "sp", wechat.PrivateKeyFile)) },
			broken: map[string]string{"sp": wechat.PrivateKeyFile + ": no such file",
				"cafe": "its provider sp is broken: ", "kiosk": "its provider sp is broken: "},
			loaded: []string{"shop"},
		},
		{
			name: "a provider without an app",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "sp", ks.config(wechat.MerchantProvider, "1900000002"))
			},
			broken: map[string]string{"sp": "appid is empty", "cafe": "its provider sp is broken", "kiosk": "its provider sp is broken"},
			loaded: []string{"shop"},
		},
		{
			name: "a sub-merchant with keys of its own",
			setup: func(t *testing.T, root string) {
				c := sub("sp", "1600000009")
				c.APIKey = ks.cfg.APIKey
				putSub(t, root, "bar", c)
				c = sub("sp", "1600000008")
				c.MchID = "1900000008"
				putSub(t, root, "baz", c)
				c = sub("sp", "1600000007")
				c.WechatPayPublicKeyID = ks.cfg.WechatPayPublicKeyID
				putSub(t, root, "qux", c)
			},
			broken: map[string]string{"bar": "a sub-merchant has no mchid or keys of its own", "baz": "a sub-merchant has no mchid or keys of its own",
				"qux": "a sub-merchant has no mchid or keys of its own"},
			loaded: everyone,
		},
		{
			name:   "a sub-merchant without sub_mchid",
			setup:  func(t *testing.T, root string) { putSub(t, root, "bar", sub("sp", "")) },
			broken: map[string]string{"bar": "a sub-merchant needs provider and sub_mchid"},
			loaded: everyone,
		},
		{
			name: "bad folder names",
			setup: func(t *testing.T, root string) {
				ks.put(t, root, "Shop3", direct("1900000007", app(otherA, wechat.AppMobile)))
				putSub(t, root, "_bar", sub("sp", "1600000009"))
				putSub(t, root, "bar.old", sub("sp", "1600000008"))
			},
			broken: map[string]string{"Shop3": `folder name "Shop3"`, "_bar": `folder name "_bar"`, "bar.old": `folder name "bar.old"`},
			loaded: everyone,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := base(t, ks)
			tc.setup(t, root)
			r, err := wechat.LoadRegistry(root, "single")
			if err != nil {
				t.Fatal(err)
			}
			broken := r.Broken()
			for name, want := range tc.broken {
				err, ok := broken[name]
				switch {
				case !ok:
					t.Errorf("%s loaded; want it broken with %q", name, want)
				case !strings.Contains(err.Error(), want):
					t.Errorf("%s: %v; want %q in it", name, err, want)
				case !errors.Is(err, wechat.ErrMerchantConfig):
					t.Errorf("%s: %v is not an ErrMerchantConfig", name, err)
				}
			}
			for name, err := range broken {
				if _, ok := tc.broken[name]; !ok {
					t.Errorf("%s is broken, unexpectedly: %v", name, err)
				}
			}
			want := slices.Sorted(slices.Values(tc.loaded))
			if got := loadedNames(r); !slices.Equal(got, want) {
				t.Errorf("loaded %v, want %v", got, want)
			}
			for name, err := range broken {
				if _, lerr := r.Merchant(name); !errors.Is(lerr, wechat.ErrMerchantUnavailable) || !strings.Contains(lerr.Error(), err.Error()) {
					t.Errorf("Merchant(%s) = %v, want ErrMerchantUnavailable with its reason", name, lerr)
				}
			}
		})
	}
}

// TestLoadRegistryLookups: what the workers ask the registry of a folder
// with every kind of merchant.
func TestLoadRegistryLookups(t *testing.T) {
	ks := newKeySet(t)
	root := base(t, ks)
	r, err := wechat.LoadRegistry(root, "single")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Broken()) != 0 {
		t.Fatalf("broken: %v", r.Broken())
	}
	if got, want := r.Names(), []string{"cafe", "kiosk", "shop"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v (a provider takes no orders)", got, want)
	}
	if ps := r.Providers(); len(ps) != 1 || ps[0].Name != "sp" || ps[0].Kind != wechat.MerchantProvider {
		t.Errorf("Providers() = %v, want sp", ps)
	}

	for _, name := range []string{"nope", "sp", "single", ""} {
		if _, err := r.Merchant(name); !errors.Is(err, wechat.ErrUnknownMerchant) || errors.Is(err, wechat.ErrMerchantUnavailable) {
			t.Errorf("Merchant(%q): %v, want ErrUnknownMerchant", name, err)
		}
	}
	shop, err := r.Merchant("shop")
	if err != nil {
		t.Fatal(err)
	}
	cafe, err := r.Merchant("cafe")
	if err != nil {
		t.Fatal(err)
	}
	kiosk, err := r.Merchant("kiosk")
	if err != nil {
		t.Fatal(err)
	}
	sp := r.Providers()[0]

	// Identities: a sub-merchant is its provider's mchid and keys with its own sub_mchid.
	if shop.Kind != wechat.MerchantDirect || shop.MchID != "1900000001" || shop.Partner() || shop.SpAppID() != "" || shop.AppID != shopOA {
		t.Errorf("shop: %+v", shop.LogValue())
	}
	for _, m := range []*wechat.Merchant{cafe, kiosk} {
		if m.Kind != wechat.MerchantSub || !m.Partner() || m.MchID != sp.MchID || m.Provider != "sp" || m.SpAppID() != spOA {
			t.Errorf("%s: kind %s, mchid %s, provider %s, sp_appid %s", m.Name, m.Kind, m.MchID, m.Provider, m.SpAppID())
		}
		if m.APIKey != sp.APIKey || m.APIv3Key != sp.APIv3Key || m.SerialNo != sp.SerialNo || m.Certificate != sp.Certificate ||
			m.WechatPayPublicKeyID != sp.WechatPayPublicKeyID || !m.WechatPayPublicKey.Equal(sp.WechatPayPublicKey) {
			t.Errorf("%s does not hold its provider's keys", m.Name)
		}
		if pub, ok := m.Signer().Public().(*rsa.PublicKey); !ok || !pub.Equal(sp.Signer().Public()) {
			t.Errorf("%s does not sign with its provider's key", m.Name)
		}
	}
	if cafe.SubMchID != "1600000001" || kiosk.SubMchID != "1600000002" || cafe.AppID != cafeMP || kiosk.AppID != spOA {
		t.Errorf("sub_mchids %s %s, default apps %s %s", cafe.SubMchID, kiosk.SubMchID, cafe.AppID, kiosk.AppID)
	}
	if sp.SubMchID != "" || sp.Name != "sp" || len(sp.SpApps) != 0 {
		t.Errorf("the provider was changed by its sub-merchants: %v", sp.LogValue())
	}

	lookups := []struct {
		m       *wechat.Merchant
		appid   string
		want    bool
		kind    wechat.AppKind
		spApp   bool
		comment string
	}{
		{shop, shopOA, true, wechat.AppOfficialAccount, false, "its own"},
		{shop, shopMP, true, wechat.AppMiniProgram, false, "its own"},
		{shop, spOA, false, "", false, "another's"},
		{cafe, cafeMP, true, wechat.AppMiniProgram, false, "its own (sub_appid)"},
		{cafe, spOA, true, wechat.AppOfficialAccount, true, "its provider's (sp_appid)"},
		{cafe, spMP, true, wechat.AppMiniProgram, true, "its provider's (sp_appid)"},
		{cafe, shopOA, false, "", false, "another's"},
		{kiosk, spOA, true, wechat.AppOfficialAccount, true, "its provider's"},
		{kiosk, spMP, true, wechat.AppMiniProgram, true, "its provider's"},
		{kiosk, cafeMP, false, "", false, "another sub-merchant's"},
	}
	for _, l := range lookups {
		a, ok := l.m.App(l.appid)
		if ok != l.want || ok && (a.AppID != l.appid || a.Kind != l.kind || a.AppSecret != wechat.Secret("secret-of-"+l.appid)) {
			t.Errorf("%s.App(%s) (%s) = %+v %v", l.m.Name, l.appid, l.comment, a, ok)
		}
		if got := l.m.IsSpApp(l.appid); got != l.spApp {
			t.Errorf("%s.IsSpApp(%s) (%s) = %v", l.m.Name, l.appid, l.comment, got)
		}
	}

	byKind := []struct {
		m    *wechat.Merchant
		kind wechat.AppKind
		want string // "" for none
	}{
		{shop, wechat.AppOfficialAccount, shopOA},
		{shop, wechat.AppMiniProgram, shopMP},
		{shop, wechat.AppMobile, ""},
		{cafe, wechat.AppMiniProgram, cafeMP},                            // its own before its provider's
		{cafe, wechat.AppOfficialAccount, spOA},                          // none of its own: its provider's
		{kiosk, wechat.AppMiniProgram, spMP},                             // none of its own at all: the provider's of that kind
		{kiosk, wechat.AppOfficialAccount, spOA},                         //
		{kiosk, wechat.AppMobile, ""},                                    //
		{sp, wechat.AppMiniProgram, spMP},                                //
		{sp, wechat.AppMobile, ""},                                       //
		{&wechat.Merchant{AppID: otherA}, wechat.AppMiniProgram, otherA}, // the single-app layout serves every kind
	}
	for _, c := range byKind {
		a, ok := c.m.AppFor(c.kind)
		if ok != (c.want != "") || a.AppID != c.want {
			t.Errorf("%s.AppFor(%s) = %s %v, want %q", c.m.Name, c.kind, a.AppID, ok, c.want)
		}
	}

	var ids []string
	for _, a := range r.Apps() {
		ids = append(ids, a.AppID)
		if a.Kind == "" || a.AppSecret == "" {
			t.Errorf("Apps(): %s has kind %q and a secret %v", a.AppID, a.Kind, a.AppSecret != "")
		}
	}
	if want := []string{shopOA, shopMP, spOA, spMP, cafeMP}; !slices.Equal(ids, slices.Sorted(slices.Values(want))) {
		t.Errorf("Apps() = %v, want each of %v once", ids, want)
	}
}

// TestLoadRegistrySingle: a folder with merchant.json itself is one
// merchant, named by the caller; merchant folders below it are not read.
func TestLoadRegistrySingle(t *testing.T) {
	ks := newKeySet(t)
	dir := t.TempDir()
	for _, f := range append(slices.Clone(keyFiles), wechat.MerchantFile) {
		copyFile(t, filepath.Join(ks.dir, f), filepath.Join(dir, f))
	}
	ks.put(t, dir, "other", ks.config(wechat.MerchantDirect, "1900000009", app(otherA, wechat.AppMobile)))
	r, err := wechat.LoadRegistry(dir, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := loadedNames(r); !slices.Equal(got, []string{"default"}) || len(r.Broken()) != 0 {
		t.Fatalf("loaded %v, broken %v; want default only", got, r.Broken())
	}
	m, _ := r.Merchant("default")
	if m.Kind != wechat.MerchantDirect || m.MchID != ks.cfg.MchID || m.AppID != ks.cfg.AppID {
		t.Errorf("default: %v", m.LogValue())
	}
	if a, ok := m.AppFor(wechat.AppMiniProgram); !ok || a.AppID != ks.cfg.AppID {
		t.Errorf("the single-app layout's app does not serve mini-programs: %v", a)
	}
	if apps := r.Apps(); len(apps) != 1 || apps[0].AppID != ks.cfg.AppID {
		t.Errorf("Apps() = %v", apps)
	}

	remove(t, filepath.Join(dir, wechat.WechatPayPublicKeyFile))
	if r, err = wechat.LoadRegistry(dir, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Merchant("default"); !errors.Is(err, wechat.ErrMerchantUnavailable) || !strings.Contains(err.Error(), wechat.WechatPayPublicKeyFile) {
		t.Errorf("a broken single merchant: %v", err)
	}

	subDir := t.TempDir()
	putSub(t, subDir, ".", sub("sp", "1600000001"))
	if r, err = wechat.LoadRegistry(subDir, "default"); err != nil {
		t.Fatal(err)
	}
	if err := r.Broken()["default"]; err == nil || !strings.Contains(err.Error(), "is a sub-merchant") {
		t.Errorf("a single sub-merchant: %v", err)
	}
}

// TestLoadRegistryNothing: a folder that is not there, or holds no
// merchant, is an error of the whole registry, not an empty one.
func TestLoadRegistryNothing(t *testing.T) {
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "notes"), 0o700); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{empty: "no merchant in", filepath.Join(empty, "nope"): "no such file"} {
		r, err := wechat.LoadRegistry(dir, "default")
		if !errors.Is(err, wechat.ErrMerchantConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, %v; want an ErrMerchantConfig with %q", filepath.Base(dir), r, err, want)
		}
	}
}

// TestNewRegistry: a registry of merchants made by hand sorts providers
// from the merchants that take orders.
func TestNewRegistry(t *testing.T) {
	r := wechat.NewRegistry(&wechat.Merchant{Name: "a", AppID: otherA}, &wechat.Merchant{Name: "p", Kind: wechat.MerchantProvider, AppID: spOA})
	if !slices.Equal(r.Names(), []string{"a"}) || len(r.Providers()) != 1 || len(r.Broken()) != 0 {
		t.Errorf("names %v, providers %v", r.Names(), r.Providers())
	}
}
