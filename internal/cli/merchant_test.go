package cli

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// merchantKeys is one set of merchant key files the simulator made, copied
// into every merchant folder of a test.
type merchantKeys struct {
	dir string
	cfg wechat.MerchantConfig
}

func newMerchantKeys(t *testing.T) merchantKeys {
	t.Helper()
	dir := t.TempDir()
	if _, err := sim.EnsureKeys(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := wechat.ReadMerchantConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	return merchantKeys{dir: dir, cfg: cfg}
}

// put writes root/name: the key files (for a direct merchant or a
// provider) and merchant.json.
func (k merchantKeys) put(t *testing.T, root, name string, cfg wechat.MerchantConfig) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != wechat.MerchantSub {
		for _, f := range []string{wechat.PrivateKeyFile, wechat.CertificateFile, wechat.WechatPayPublicKeyFile} {
			raw, err := os.ReadFile(filepath.Join(k.dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg.APIKey, cfg.APIv3Key, cfg.SerialNo = k.cfg.APIKey, k.cfg.APIv3Key, k.cfg.SerialNo
		cfg.WechatPayPublicKeyID = k.cfg.WechatPayPublicKeyID
	}
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, wechat.MerchantFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// appSecret is the secret of the test app appid: a value that appears nowhere else.
func appSecret(appid string) string {
	return "a5ec7e7" + strings.Repeat("f", 8) + appid[len(appid)-4:] + "0c0ffee"
}

func testApp(appid string, kind wechat.AppKind) wechat.AppConfig {
	return wechat.AppConfig{AppID: appid, AppSecret: appSecret(appid), Kind: kind}
}

// The apps of the merchant folder of the tests.
const (
	tShopOA = "wx00000000000000a1"
	tShopMP = "wx00000000000000a2"
	tSpOA   = "wx00000000000000b1"
	tSpMP   = "wx00000000000000b2"
	tCafeMP = "wx00000000000000c1"
	tBadApp = "wx00000000000000e1"
)

// goodFolder is a folder of merchants that all load: a direct merchant
// (shop), a provider (sp) and its sub-merchants cafe (with an app of its
// own) and kiosk (without).
func goodFolder(t *testing.T, k merchantKeys) string {
	t.Helper()
	root := t.TempDir()
	k.put(t, root, "shop", wechat.MerchantConfig{MchID: "1900000001",
		Apps: []wechat.AppConfig{testApp(tShopOA, wechat.AppOfficialAccount), testApp(tShopMP, wechat.AppMiniProgram)}})
	k.put(t, root, "sp", wechat.MerchantConfig{Kind: wechat.MerchantProvider, MchID: "1900000002",
		Apps: []wechat.AppConfig{testApp(tSpOA, wechat.AppOfficialAccount), testApp(tSpMP, wechat.AppMiniProgram)}})
	k.put(t, root, "cafe", wechat.MerchantConfig{Kind: wechat.MerchantSub, Provider: "sp", SubMchID: "1600000001",
		Apps: []wechat.AppConfig{testApp(tCafeMP, wechat.AppMiniProgram)}})
	k.put(t, root, "kiosk", wechat.MerchantConfig{Kind: wechat.MerchantSub, Provider: "sp", SubMchID: "1600000002"})
	return root
}

// secretsOf are the strings no output may hold: the keys, every app's
// secret, and the private key's body.
func secretsOf(t *testing.T, k merchantKeys, appids ...string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k.dir, wechat.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{k.cfg.APIKey, k.cfg.APIv3Key, k.cfg.APIKey[:16], k.cfg.APIv3Key[16:], strings.Split(string(raw), "\n")[1]}
	for _, a := range appids {
		secrets = append(secrets, appSecret(a))
	}
	return secrets
}

func runWxflow(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = Execute(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// lineOf is the line of out that starts with name and a space.
func lineOf(t *testing.T, out, name string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	t.Fatalf("no line for %s in:\n%s", name, out)
	return ""
}

// TestMerchantList: one line per merchant, provider and sub-merchant, with
// what identifies it and, for a broken one, why; in text and JSON; and no
// secret of any of them, broken or not.
func TestMerchantList(t *testing.T) {
	k := newMerchantKeys(t)
	root := goodFolder(t, k)
	bad := wechat.MerchantConfig{MchID: "1900000003", Apps: []wechat.AppConfig{testApp(tBadApp, wechat.AppOfficialAccount)}}
	k.put(t, root, "broken", bad)
	cfgPath := filepath.Join(root, "broken", wechat.MerchantFile)
	raw, _ := os.ReadFile(cfgPath)
	raw = []byte(strings.Replace(string(raw), k.cfg.APIKey, k.cfg.APIKey[:31], 1)) // one character short
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k.put(t, root, "nokey", wechat.MerchantConfig{MchID: "1900000004", Apps: []wechat.AppConfig{testApp("wx00000000000000e2", wechat.AppMiniProgram)}})
	if err := os.Remove(filepath.Join(root, "nokey", wechat.PrivateKeyFile)); err != nil {
		t.Fatal(err)
	}
	secrets := secretsOf(t, k, tShopOA, tShopMP, tSpOA, tSpMP, tCafeMP, tBadApp, "wx00000000000000e2")

	code, out, errOut := runWxflow(t, "merchant", "list", "--merchant-dir", root)
	if code != ExitOK {
		t.Fatalf("list: status %d: %s", code, errOut)
	}
	t.Logf("wxflow merchant list:\n%s", out)
	pub := "public key " + k.cfg.WechatPayPublicKeyID
	for name, want := range map[string][]string{
		"shop":   {"direct", "1900000001", tShopOA + ":official_account", tShopMP + ":mini_program", pub, " ok"},
		"sp":     {"provider", "1900000002", tSpOA + ":official_account", tSpMP + ":mini_program", pub, " ok"},
		"cafe":   {"sub", "1900000002", "1600000001", " sp ", tCafeMP + ":mini_program", tSpOA + ":official_account(sp)", pub, " ok"},
		"kiosk":  {"sub", "1600000002", tSpMP + ":mini_program(sp)", " ok"},
		"broken": {"direct", "1900000003", tBadApp + ":official_account", "broken: ", "api_key must be 32 characters, got 31"},
		"nokey":  {"1900000004", "broken: ", wechat.PrivateKeyFile, "no such file"},
	} {
		line := lineOf(t, out, name)
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", name, line, w)
			}
		}
	}
	if strings.Contains(lineOf(t, out, "kiosk"), tCafeMP) {
		t.Errorf("kiosk lists cafe's app: %s", lineOf(t, out, "kiosk"))
	}

	code, jsonOut, errOut := runWxflow(t, "merchant", "list", "--json", "--merchant-dir", root)
	if code != ExitOK {
		t.Fatalf("list --json: status %d: %s", code, errOut)
	}
	var reports []merchantReport
	if err := json.Unmarshal([]byte(jsonOut), &reports); err != nil {
		t.Fatalf("list --json: %v\n%s", err, jsonOut)
	}
	byName := map[string]merchantReport{}
	for _, r := range reports {
		byName[r.Name] = r
	}
	if len(reports) != 6 {
		t.Errorf("list --json: %d merchants, want 6", len(reports))
	}
	if c := byName["cafe"]; c.Kind != "sub" || c.SubMchID != "1600000001" || c.Provider != "sp" || c.Error != "" || len(c.Apps) != 3 ||
		!c.Apps[1].Provider || c.WechatPayPublicKeyID != k.cfg.WechatPayPublicKeyID || c.SerialNo != k.cfg.SerialNo {
		t.Errorf("cafe: %+v", c)
	}
	if b := byName["broken"]; !strings.Contains(b.Error, "api_key") || b.MchID != "1900000003" {
		t.Errorf("broken: %+v", b)
	}

	code, checkOut, checkErr := runWxflow(t, "merchant", "check", "--merchant-dir", root)
	if code != ExitError || !strings.Contains(checkErr, "2 of 6 merchants") || !strings.Contains(checkErr, "broken, nokey") {
		t.Errorf("check: status %d, stderr %q; want 1 naming broken and nokey", code, checkErr)
	}
	t.Logf("wxflow merchant check:\n%s%s", checkOut, checkErr)
	for _, want := range []string{"ok   shop", "ok   cafe", "FAIL broken: broken: ", "api_key must be 32", "FAIL nokey: "} {
		if !strings.Contains(checkOut, want) {
			t.Errorf("check says nothing of %q:\n%s", want, checkOut)
		}
	}

	printed := out + errOut + jsonOut + checkOut + checkErr
	for _, s := range secrets {
		if strings.Contains(printed, s) {
			t.Errorf("a secret was printed: %q", s)
		}
	}
}

// TestMerchantCheck: what check finds beyond what loading finds, each on
// an otherwise good folder: a failure makes status 1 and names the
// merchant; a warning is printed with status 0.
func TestMerchantCheck(t *testing.T) {
	k := newMerchantKeys(t)
	keyPEM, err := os.ReadFile(filepath.Join(k.dir, wechat.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := wechat.ParseRSAPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// certificate is the merchant's key certified, with its serial, for the given period.
	certificate := func(t *testing.T, notBefore, notAfter time.Time) []byte {
		t.Helper()
		m, err := wechat.LoadMerchant("m", k.dir)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: m.Certificate.Leaf.SerialNumber, Subject: pkix.Name{CommonName: "1900000001"},
			NotBefore: notBefore, NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	write := func(t *testing.T, path string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	editConfig := func(t *testing.T, root, name string, edit func(*wechat.MerchantConfig)) {
		t.Helper()
		cfg, err := wechat.ReadMerchantConfig(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		edit(&cfg)
		raw, _ := json.Marshal(cfg)
		write(t, filepath.Join(root, name, wechat.MerchantFile), raw, 0o600)
	}
	now := time.Now()
	tests := []struct {
		name     string
		setup    func(t *testing.T, root string)
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{name: "all good", setup: func(*testing.T, string) {}, wantCode: ExitOK,
			wantOut: []string{"ok   cafe (sub)", "ok   kiosk (sub)", "ok   shop (direct)", "ok   sp (provider)", "4 merchants in", "all ready"}},
		{
			name: "an app without its secret",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "cafe", func(c *wechat.MerchantConfig) { c.Apps[0].AppSecret = "" })
			},
			wantCode: ExitError, wantOut: []string{"FAIL cafe: app " + tCafeMP + " has no appsecret", "ok   kiosk"}, wantErr: "1 of 4 merchants",
		},
		{
			name: "a mobile app without a secret",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "shop", func(c *wechat.MerchantConfig) {
					c.Apps = append(c.Apps, wechat.AppConfig{AppID: "wx00000000000000a3", Kind: wechat.AppMobile})
				})
			},
			wantCode: ExitOK, wantOut: []string{"ok   shop"},
		},
		{
			name: "an appid not of WeChat's form",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "shop", func(c *wechat.MerchantConfig) { c.Apps[1].AppID = "wx-shop-mini" })
			},
			wantCode: ExitError, wantOut: []string{`FAIL shop: appid "wx-shop-mini" is not of WeChat's form`}, wantErr: "cannot take orders: shop",
		},
		{
			name: "a sub_mchid not a number",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "kiosk", func(c *wechat.MerchantConfig) { c.SubMchID = "kiosk-1" })
			},
			wantCode: ExitError, wantOut: []string{`FAIL kiosk: sub_mchid "kiosk-1" is not a merchant number`}, wantErr: "kiosk",
		},
		{
			name: "an expired certificate",
			setup: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "shop", wechat.CertificateFile), certificate(t, now.AddDate(-5, 0, 0), now.AddDate(0, 0, -1)), 0o644)
			},
			wantCode: ExitError, wantOut: []string{"FAIL shop: the merchant certificate expired on " + now.AddDate(0, 0, -1).Format(time.DateOnly)}, wantErr: "shop",
		},
		{
			name: "a certificate not yet valid",
			setup: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "sp", wechat.CertificateFile), certificate(t, now.AddDate(0, 0, 2), now.AddDate(1, 0, 0)), 0o644)
			},
			wantCode: ExitError, wantOut: []string{"FAIL sp: the merchant certificate is valid only from"}, wantErr: "sp",
		},
		{
			name: "a certificate that expires soon",
			setup: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "shop", wechat.CertificateFile), certificate(t, now.AddDate(-5, 0, 0), now.AddDate(0, 0, 10)), 0o644)
			},
			wantCode: ExitOK, wantOut: []string{"ok   shop", "warn shop: the merchant certificate expires on " + now.AddDate(0, 0, 10).Format(time.DateOnly)},
		},
		{
			name: "nothing verifies WeChat",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "shop", func(c *wechat.MerchantConfig) { c.WechatPayPublicKeyID = "" })
			},
			wantCode: ExitError, wantOut: []string{"FAIL shop: nothing verifies WeChat's signatures"}, wantErr: "shop",
		},
		{
			name: "the merchant's own key as WeChat Pay's",
			setup: func(t *testing.T, root string) {
				der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
				write(t, filepath.Join(root, "shop", wechat.WechatPayPublicKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
			},
			wantCode: ExitError, wantOut: []string{"FAIL shop: wechatpay_public_key.pem is the merchant's own public key"}, wantErr: "shop",
		},
		{
			name: "a public key id of another form",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "sp", func(c *wechat.MerchantConfig) { c.WechatPayPublicKeyID = "KEY1" })
			},
			wantCode: ExitOK, wantOut: []string{"ok   sp", `warn sp: wechatpay_public_key_id "KEY1" does not start with PUB_KEY_ID_`},
		},
		{
			name: "key files in a sub-merchant's folder",
			setup: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "kiosk", wechat.PrivateKeyFile), keyPEM, 0o600)
			},
			wantCode: ExitOK, wantOut: []string{"ok   kiosk", "warn kiosk: apiclient_key.pem is in the folder of a sub-merchant"},
		},
		{
			name: "a private key others may read",
			setup: func(t *testing.T, root string) {
				write(t, filepath.Join(root, "shop", wechat.PrivateKeyFile), keyPEM, 0o644)
			},
			wantCode: ExitOK, wantOut: []string{"ok   shop", "warn shop: apiclient_key.pem may be read by others"},
		},
		{
			name: "a provider without sub-merchants",
			setup: func(t *testing.T, root string) {
				for _, s := range []string{"cafe", "kiosk"} {
					if err := os.RemoveAll(filepath.Join(root, s)); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantCode: ExitOK, wantOut: []string{"ok   sp", "warn sp: no sub-merchant"},
		},
		{
			name: "a broken provider",
			setup: func(t *testing.T, root string) {
				editConfig(t, root, "sp", func(c *wechat.MerchantConfig) { c.APIv3Key = "short" })
			},
			wantCode: ExitError, wantOut: []string{"FAIL sp: broken: ", "api_v3_key must be 32 bytes", "FAIL cafe: broken: ", "its provider sp is broken"},
			wantErr: "3 of 4 merchants in",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := goodFolder(t, k)
			tc.setup(t, root)
			code, out, errOut := runWxflow(t, "merchant", "check", "--merchant-dir", root)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("check: status %d, stderr %q; want %d and %q\n%s", code, errOut, tc.wantCode, tc.wantErr, out)
			}
			if tc.wantCode == ExitOK && errOut != "" {
				t.Errorf("stderr: %q", errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("check says nothing of %q:\n%s", w, out)
				}
			}
			for _, s := range secretsOf(t, k, tShopOA, tShopMP, tSpOA, tSpMP, tCafeMP) {
				if strings.Contains(out+errOut, s) {
					t.Errorf("a secret was printed: %q", s)
				}
			}
		})
	}
}

// TestMerchantSettings: the merchant folder comes from --merchant-dir or
// WXFLOW_MERCHANT_DIR, the single merchant's name from --merchant or
// WXFLOW_MERCHANT; a folder that is not there is a usage error, one with no
// merchant an error.
func TestMerchantSettings(t *testing.T) {
	k := newMerchantKeys(t)
	single := t.TempDir()
	cfg := k.cfg
	cfg.MchID = "1900000001" // the simulator's may be of another form (19-1234567), which check fails
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(single, wechat.MerchantFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{wechat.PrivateKeyFile, wechat.CertificateFile, wechat.WechatPayPublicKeyFile} {
		raw, err := os.ReadFile(filepath.Join(k.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(single, f), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "sim"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     string // in stdout, or stderr when the status is not 0
	}{
		{name: "flags", args: []string{"--merchant-dir", single, "--merchant", "acme"}, want: "acme "},
		{name: "environment", env: map[string]string{"WXFLOW_MERCHANT_DIR": single, "WXFLOW_MERCHANT": "acme2"}, want: "acme2 "},
		{name: "default name", args: []string{"--merchant-dir", single}, want: "default "},
		{name: "flag over environment", args: []string{"--merchant-dir", single}, env: map[string]string{"WXFLOW_MERCHANT_DIR": data}, want: "default "},
		{name: "bad name", args: []string{"--merchant-dir", single, "--merchant", "Acme!"}, wantCode: ExitUsage, want: "--merchant"},
		{name: "no such folder", args: []string{"--merchant-dir", filepath.Join(data, "nope")}, wantCode: ExitUsage, want: "no such folder"},
		{name: "the data folder's simulator keys, none yet", args: []string{"--data", data}, wantCode: ExitError, want: "no merchant in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WXFLOW_MERCHANT_DIR", "")
			t.Setenv("WXFLOW_MERCHANT", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			for _, sub := range []string{"list", "check"} {
				code, out, errOut := runWxflow(t, append([]string{"merchant", sub}, tc.args...)...)
				got := out
				if tc.wantCode != ExitOK {
					got = errOut
				}
				if code != tc.wantCode || !strings.Contains(got, tc.want) {
					t.Errorf("merchant %s: status %d, stdout %q, stderr %q; want %d and %q", sub, code, out, errOut, tc.wantCode, tc.want)
				}
			}
		})
	}
}
