package cli

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat"
)

// merchantCommand shows the merchants a deployment loads from its merchant
// folder, so that a person adding one sees at once whether it works.
func merchantCommand() *cobra.Command {
	merchant := &cobra.Command{Use: "merchant", Short: "List the merchants of the merchant folder and check them (no secret is printed)"}
	merchant.AddCommand(merchantListCommand(), merchantCheckCommand())
	return merchant
}

func merchantListCommand() *cobra.Command {
	var s stack.Settings
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the merchants, providers and sub-merchants of the merchant folder, with their apps and keys' ids",
		Long: `List what the merchant folder (--merchant-dir) holds: one line per merchant, provider and
sub-merchant, with its mchid, sub_mchid, provider, apps (appid:kind; a provider's apps that a
sub-merchant's payers may pay in are marked sp), what verifies WeChat's signatures (the WeChat Pay
public key id, platform certificates), and for a broken one why. No secret is printed.
A folder with merchant.json itself is one merchant, named --merchant.

Exit status: 0 when the folder was read (even with broken merchants: see merchant check), 1 when it
holds no merchant, 2 for usage errors.`,
		Args: cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gMerchant)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the merchants as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		reports, err := merchantReports(s.MerchantDir, s.MerchantName)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(reports)
		}
		return printMerchants(cmd.OutOrStdout(), reports)
	}
	return cmd
}

func merchantCheckCommand() *cobra.Command {
	var s stack.Settings
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check every merchant of the merchant folder offline; fail when one cannot take orders",
		Long: `Check the merchant folder (--merchant-dir) without calling WeChat: each merchant loads (its
key files are there and readable, the private key goes with the certificate, the serial is the
certificate's, the keys have their lengths, no appid, mchid or sub_mchid is bound twice, a
sub-merchant's provider loads), and beyond that: the certificate is in its validity period, something
verifies WeChat's signatures, each Official Account and mini-program has its appsecret, appids and
merchant numbers have WeChat's form. It warns of what works but looks wrong (a certificate that
expires within 30 days, a provider no sub-merchant names, key files in a sub-merchant's folder,
a private key others may read).

Exit status: 0 when every merchant can take orders (warnings or not), 1 when one cannot (each named,
with why), 2 for usage errors.`,
		Args: cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gMerchant)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		reports, err := merchantReports(s.MerchantDir, s.MerchantName)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		var failed []string
		for _, r := range reports {
			switch {
			case r.Error != "":
				fmt.Fprintf(out, "FAIL %s: broken: %s\n", r.Name, r.Error)
				failed = append(failed, r.Name)
			case len(r.Problems) > 0:
				fmt.Fprintf(out, "FAIL %s: %s\n", r.Name, strings.Join(r.Problems, "; "))
				failed = append(failed, r.Name)
			default:
				fmt.Fprintf(out, "ok   %s (%s)\n", r.Name, r.Kind)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(out, "warn %s: %s\n", r.Name, w)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d merchants in %s cannot take orders: %s", len(failed), len(reports), s.MerchantDir, strings.Join(failed, ", "))
		}
		fmt.Fprintf(out, "%d merchants in %s, all ready\n", len(reports), s.MerchantDir)
		return nil
	}
	return cmd
}

// merchantReport is what list and check say of one merchant: identifiers
// and findings, never a secret.
type merchantReport struct {
	Name     string      `json:"name"`
	Kind     string      `json:"kind,omitempty"`
	MchID    string      `json:"mchid,omitempty"`
	SubMchID string      `json:"sub_mchid,omitempty"`
	Provider string      `json:"provider,omitempty"`
	Apps     []appReport `json:"apps,omitempty"`
	// SerialNo is the merchant certificate's serial (a provider's, for a sub-merchant).
	SerialNo             string   `json:"merchant_serial_no,omitempty"`
	WechatPayPublicKeyID string   `json:"wechatpay_public_key_id,omitempty"`
	PlatformCertificates []string `json:"platform_certificates,omitempty"`
	// Error is why the merchant is broken: its orders fail; empty when it loaded.
	Error string `json:"error,omitempty"`
	// Problems are what check finds that stops a loaded merchant from taking orders.
	Problems []string `json:"problems,omitempty"`
	// Warnings are what check finds that works but looks wrong.
	Warnings []string `json:"warnings,omitempty"`

	dir string // the merchant's folder
}

// appReport is one app of a merchant.
type appReport struct {
	AppID string `json:"appid"`
	Kind  string `json:"kind,omitempty"`
	// Provider is true for a provider's app a sub-merchant's payers pay in (sp_appid).
	Provider bool `json:"sp,omitempty"`
}

func (a appReport) String() string {
	s := a.AppID + ":" + a.Kind
	if a.Kind == "" {
		s += "any"
	}
	if a.Provider {
		s += "(sp)"
	}
	return s
}

// merchantReports loads dir as the deployment does (wechat.LoadRegistry)
// and reports every merchant, provider and broken one, by name.
func merchantReports(dir, single string) ([]merchantReport, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, usageError{fmt.Errorf("--merchant-dir %s: no such folder", dir)}
	}
	reg, err := wechat.LoadRegistry(dir, single)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(filepath.Join(dir, wechat.MerchantFile))
	folderOf := func(name string) string {
		if statErr == nil {
			return dir // one merchant: the folder itself
		}
		return filepath.Join(dir, name)
	}
	subs := map[string]int{} // provider → its sub-merchants that loaded
	var out []merchantReport
	for _, m := range append(reg.Merchants(), reg.Providers()...) {
		r := loadedReport(m)
		r.dir = folderOf(m.Name)
		if m.Partner() {
			subs[m.Provider]++
		}
		out = append(out, r)
	}
	for name, err := range reg.Broken() {
		r := merchantReport{Name: name, Error: strings.TrimPrefix(err.Error(), wechat.ErrMerchantConfig.Error()+": "), dir: folderOf(name)}
		if cfg, cerr := wechat.ReadMerchantConfig(r.dir); cerr == nil {
			// What the broken merchant meant to be, from its merchant.json: identifiers only.
			r.Kind, r.MchID, r.SubMchID, r.Provider = string(cfg.Kind), cfg.MchID, cfg.SubMchID, cfg.Provider
			r.SerialNo, r.WechatPayPublicKeyID = cfg.SerialNo, cfg.WechatPayPublicKeyID
			if r.Kind == "" {
				r.Kind = string(wechat.MerchantDirect)
			}
			if cfg.AppID != "" {
				r.Apps = append(r.Apps, appReport{AppID: cfg.AppID})
			}
			for _, a := range cfg.Apps {
				r.Apps = append(r.Apps, appReport{AppID: a.AppID, Kind: string(a.Kind)})
			}
		}
		out = append(out, r)
	}
	now := time.Now()
	for i := range out {
		r := &out[i]
		if r.Error != "" {
			continue
		}
		m := merchantOf(reg, r.Name)
		r.Problems, r.Warnings = checkMerchant(m, r.dir, now)
		if m.Kind == wechat.MerchantProvider && subs[m.Name] == 0 {
			r.Warnings = append(r.Warnings, "no sub-merchant that loads names it as provider: it takes no orders of its own")
		}
	}
	slices.SortFunc(out, func(a, b merchantReport) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// merchantOf is the loaded merchant or provider named name.
func merchantOf(reg *wechat.Registry, name string) *wechat.Merchant {
	if m, err := reg.Merchant(name); err == nil {
		return m
	}
	for _, p := range reg.Providers() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func loadedReport(m *wechat.Merchant) merchantReport {
	r := merchantReport{Name: m.Name, Kind: string(m.Kind), MchID: m.MchID, SubMchID: m.SubMchID, Provider: m.Provider,
		SerialNo: m.SerialNo, WechatPayPublicKeyID: m.WechatPayPublicKeyID}
	for _, a := range m.OwnApps() {
		r.Apps = append(r.Apps, appReport{AppID: a.AppID, Kind: string(a.Kind)})
	}
	for _, a := range m.SpApps {
		r.Apps = append(r.Apps, appReport{AppID: a.AppID, Kind: string(a.Kind), Provider: true})
	}
	for serial := range m.PlatformCertificates {
		r.PlatformCertificates = append(r.PlatformCertificates, serial)
	}
	slices.Sort(r.PlatformCertificates)
	return r
}

var (
	appIDForm = regexp.MustCompile(`^wx[0-9a-f]{16}$`)
	mchIDForm = regexp.MustCompile(`^[0-9]{8,12}$`)
)

// expirySoon is how long before its certificate expires a merchant is warned.
const expirySoon = 30 * 24 * time.Hour

// checkMerchant finds, offline, what wechat.LoadRegistry does not: what
// stops m from taking orders (problems) and what only looks wrong
// (warnings). A sub-merchant's keys are its provider's, checked there.
func checkMerchant(m *wechat.Merchant, dir string, now time.Time) (problems, warnings []string) {
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	for _, a := range m.OwnApps() {
		if !appIDForm.MatchString(a.AppID) {
			problem("appid %q is not of WeChat's form (wx and 16 hex digits)", a.AppID)
		}
		if a.AppSecret == "" && a.Kind != wechat.AppMobile {
			problem("app %s has no appsecret: it can get no openid and no access_token", a.AppID)
		}
	}
	if m.Partner() {
		if !mchIDForm.MatchString(m.SubMchID) {
			problem("sub_mchid %q is not a merchant number (8-12 digits)", m.SubMchID)
		}
		for _, f := range []string{wechat.PrivateKeyFile, wechat.CertificateFile, wechat.PKCS12File, wechat.WechatPayPublicKeyFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				warn("%s is in the folder of a sub-merchant, which signs with its provider's keys: it is never read", f)
			}
		}
		return problems, warnings
	}
	if !mchIDForm.MatchString(m.MchID) {
		problem("mchid %q is not a merchant number (8-12 digits)", m.MchID)
	}
	if m.Certificate != nil && len(m.Certificate.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(m.Certificate.Certificate[0]); err != nil {
			problem("merchant certificate: %v", err)
		} else {
			switch {
			case now.After(leaf.NotAfter):
				problem("the merchant certificate expired on %s: download a new one from the merchant platform", leaf.NotAfter.Format(time.DateOnly))
			case now.Before(leaf.NotBefore):
				problem("the merchant certificate is valid only from %s", leaf.NotBefore.Format(time.DateOnly))
			case leaf.NotAfter.Sub(now) < expirySoon:
				warn("the merchant certificate expires on %s", leaf.NotAfter.Format(time.DateOnly))
			}
		}
	}
	if m.PrivateKey != nil && m.PrivateKey.N.BitLen() < 2048 {
		problem("the private key has %d bits: WeChat Pay's are 2048", m.PrivateKey.N.BitLen())
	}
	switch {
	case m.WechatPayPublicKeyID == "" && len(m.PlatformCertificates) == 0:
		problem("nothing verifies WeChat's signatures: wechatpay_public_key_id is empty and there is no %s*.pem", wechat.PlatformCertificatePrefix)
	case m.WechatPayPublicKeyID == "":
		warn("no wechatpay_public_key_id: WeChat's signatures verify with platform certificates only")
	case !strings.HasPrefix(m.WechatPayPublicKeyID, "PUB_KEY_ID_"):
		warn("wechatpay_public_key_id %q does not start with PUB_KEY_ID_, as WeChat's do", m.WechatPayPublicKeyID)
	}
	if m.WechatPayPublicKey != nil && m.PrivateKey != nil && m.WechatPayPublicKey.Equal(&m.PrivateKey.PublicKey) {
		problem("%s is the merchant's own public key, not WeChat Pay's", wechat.WechatPayPublicKeyFile)
	}
	for serial, c := range m.PlatformCertificates {
		if now.After(c.NotAfter) {
			warn("platform certificate %s expired on %s", serial, c.NotAfter.Format(time.DateOnly))
		}
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			problem("platform certificate %s holds no RSA key", serial)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, wechat.PrivateKeyFile)); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warn("%s may be read by others (mode %s): chmod 600", wechat.PrivateKeyFile, fi.Mode().Perm())
	}
	return problems, warnings
}

// printMerchants writes one line per merchant.
func printMerchants(w io.Writer, reports []merchantReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tMCHID\tSUB_MCHID\tPROVIDER\tAPPS\tKEYS\tSTATUS")
	for _, r := range reports {
		var apps []string
		for _, a := range r.Apps {
			apps = append(apps, a.String())
		}
		var keys []string
		if r.WechatPayPublicKeyID != "" {
			keys = append(keys, "public key "+r.WechatPayPublicKeyID)
		}
		if len(r.PlatformCertificates) > 0 {
			keys = append(keys, "platform certs "+strings.Join(r.PlatformCertificates, ","))
		}
		status := "ok"
		if r.Error != "" {
			status = "broken: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, dash(r.Kind), dash(r.MchID), dash(r.SubMchID), dash(r.Provider),
			dash(strings.Join(apps, " ")), dash(strings.Join(keys, "; ")), status)
	}
	return tw.Flush()
}
