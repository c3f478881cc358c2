package wechat

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MerchantKind says how a merchant collects: on its own (direct), as a
// service provider for sub-merchants (provider: it takes no orders itself,
// WeChat refuses a provider's direct order with "受理机构必须传入sub_mch_id"), or
// as a provider's sub-merchant (sub).
type MerchantKind string

// The merchant kinds of merchant.json.
const (
	MerchantDirect   MerchantKind = "direct"
	MerchantProvider MerchantKind = "provider"
	MerchantSub      MerchantKind = "sub"
)

// AppKind says where an app's payers are, and so which payer credentials
// and front ends it has: an Official Account's pages get OAuth codes and pay
// through WeixinJSBridge or wx.chooseWXPay; a mini-program gets wx.login
// codes and pays through wx.requestPayment.
type AppKind string

// The app kinds of merchant.json. An app of the single-app layout (appid at
// the top of merchant.json) has no kind: it serves payers of any kind.
const (
	AppOfficialAccount AppKind = "official_account"
	AppMiniProgram     AppKind = "mini_program"
	AppMobile          AppKind = "app" // a mobile app: listed, not paid through by wxflow's JSAPI flow
)

func (k AppKind) valid() bool {
	return k == AppOfficialAccount || k == AppMiniProgram || k == AppMobile
}

// Serves reports whether an app of kind k can serve payers of kind want: its
// own kind, or any kind for an app of the single-app layout.
func (k AppKind) Serves(want AppKind) bool { return k == "" || k == want }

// App is one Official Account, mini-program or mobile app of a merchant.
// An openid belongs to exactly one app.
type App struct {
	AppID     string
	AppSecret Secret
	Kind      AppKind
}

// OwnApps are the merchant's own apps (for a sub-merchant, its sub_appids);
// a Merchant built by hand with only AppID has that one app.
// A sub-merchant without apps of its own has none: its AppID is then its
// provider's first app, found with its kind among SpApps.
func (m *Merchant) OwnApps() []App {
	if len(m.Apps) == 0 && m.AppID != "" && len(m.SpApps) == 0 {
		return []App{{AppID: m.AppID, AppSecret: m.AppSecret}}
	}
	return m.Apps
}

// Partner reports whether the merchant is a sub-merchant, whose calls go to
// WeChat's partner APIs with its provider's keys.
func (m *Merchant) Partner() bool { return m.SubMchID != "" }

// SpAppID is a sub-merchant's sp_appid: its provider's first app. Empty for
// other merchants.
func (m *Merchant) SpAppID() string {
	if len(m.SpApps) == 0 {
		return ""
	}
	return m.SpApps[0].AppID
}

// App finds an app payers of this merchant may pay in: one of its own, or
// for a sub-merchant one of its provider's (a payer there pays with
// sp_openid).
func (m *Merchant) App(appid string) (App, bool) {
	for _, a := range m.OwnApps() {
		if a.AppID == appid {
			return a, true
		}
	}
	for _, a := range m.SpApps {
		if a.AppID == appid {
			return a, true
		}
	}
	return App{}, false
}

// AppFor is the app that serves payers of kind want when the caller names no
// app: the merchant's first own app of that kind, else its provider's.
func (m *Merchant) AppFor(want AppKind) (App, bool) {
	for _, a := range m.OwnApps() {
		if a.Kind.Serves(want) {
			return a, true
		}
	}
	for _, a := range m.SpApps {
		if a.Kind.Serves(want) {
			return a, true
		}
	}
	return App{}, false
}

// PayerApp is the app an order's payer pays in: the app the order names
// (its own or, for a sub-merchant, its provider's), else the merchant's app
// for payers of kind want (AppFor). The workers and the API resolve an
// order's app with it alike, so that the openid, the prepay, the paySign
// and the notification check agree.
func (m *Merchant) PayerApp(appid string, want AppKind) (App, bool) {
	if appid != "" {
		return m.App(appid)
	}
	return m.AppFor(want)
}

// IsSpApp reports whether appid is one of a sub-merchant's provider's apps:
// its payers are then sp_openid under sp_appid = appid, with no sub_appid.
func (m *Merchant) IsSpApp(appid string) bool {
	return slices.ContainsFunc(m.SpApps, func(a App) bool { return a.AppID == appid })
}

// ErrUnknownApp: an order names an app that is neither the merchant's own
// nor, for a sub-merchant, its provider's. No openid of such an app can pay
// the merchant, so the call is refused before WeChat is asked.
var ErrUnknownApp = errors.New("wechat: the app is not the merchant's (nor its provider's)")

// OrderApps says under which AppIDs an order whose payer is in app appid is
// placed (empty appid = the merchant's AppID), in either API generation. For
// a direct merchant appID is appid and subAppID is empty. For a sub-merchant
// (partner mode) appID is the sp_appid and subAppID the sub_appid: a payer in
// one of the provider's apps pays with sp_openid (v2: openid) under sp_appid
// = that app and no sub_appid; a payer in the sub-merchant's own app pays
// with sub_openid under sub_appid = that app, with the provider's first app
// as sp_appid. The payer's openid is always under appid itself, which is
// also the appId the front end signs.
func (m *Merchant) OrderApps(appid string) (appID, subAppID string, err error) {
	if appid == "" {
		appid = m.AppID
	}
	_, known := m.App(appid)
	switch {
	case appid == "" || !known:
		return "", "", fmt.Errorf("%w: %q", ErrUnknownApp, appid)
	case !m.Partner():
		return appid, "", nil
	case m.SpAppID() == "":
		return "", "", fmt.Errorf("%w: sub-merchant %s has no provider app (sp_appid)", ErrUnknownApp, m.Name)
	case m.IsSpApp(appid):
		return appid, "", nil
	}
	return m.SpAppID(), appid, nil
}

// Errors of a [Registry] lookup, for callers that tell them apart.
var (
	// ErrUnknownMerchant: no merchant of that name is configured.
	ErrUnknownMerchant = errors.New("wechat: unknown merchant")
	// ErrMerchantUnavailable: the merchant is configured, but its
	// configuration is broken (a key file missing, a serial that does not
	// match, …): its orders fail with a flag while the others go on.
	ErrMerchantUnavailable = errors.New("wechat: merchant unavailable (misconfigured)")
)

// Registry is every merchant one deployment serves, loaded from a folder of
// merchant folders (LoadRegistry). A merchant whose configuration is broken
// is kept with its error, so that only its own orders fail.
type Registry struct {
	merchants map[string]*Merchant // order-taking: direct and sub
	providers map[string]*Merchant
	broken    map[string]error
}

// NewRegistry builds a registry of merchants already loaded (tests, and a
// deployment of one merchant).
func NewRegistry(ms ...*Merchant) *Registry {
	r := &Registry{merchants: map[string]*Merchant{}, providers: map[string]*Merchant{}, broken: map[string]error{}}
	for _, m := range ms {
		if m.Kind == MerchantProvider {
			r.providers[m.Name] = m
		} else {
			r.merchants[m.Name] = m
		}
	}
	return r
}

// Merchant returns the order-taking merchant named name: ErrUnknownMerchant
// when there is none, ErrMerchantUnavailable (with the reason) when its
// configuration is broken.
func (r *Registry) Merchant(name string) (*Merchant, error) {
	if m, ok := r.merchants[name]; ok {
		return m, nil
	}
	if err, ok := r.broken[name]; ok {
		return nil, fmt.Errorf("%w: %s: %w", ErrMerchantUnavailable, name, err)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMerchant, name)
}

// Names lists the order-taking merchants that loaded, sorted.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.merchants))
}

// Merchants lists the order-taking merchants that loaded, by name.
func (r *Registry) Merchants() []*Merchant {
	var out []*Merchant
	for _, n := range r.Names() {
		out = append(out, r.merchants[n])
	}
	return out
}

// Providers lists the service providers, by name: they sign for their
// sub-merchants and take no orders of their own.
func (r *Registry) Providers() []*Merchant {
	var out []*Merchant
	for _, n := range slices.Sorted(maps.Keys(r.providers)) {
		out = append(out, r.providers[n])
	}
	return out
}

// Broken lists the merchants (and providers) whose configuration failed,
// with why, by name.
func (r *Registry) Broken() map[string]error { return r.broken }

// Apps lists every app of every loaded merchant and provider, once each, by
// AppID: the apps whose access_token and jsapi_ticket the tokens worker
// keeps.
func (r *Registry) Apps() []App {
	seen := map[string]App{}
	for _, m := range append(r.Merchants(), r.Providers()...) {
		for _, a := range m.OwnApps() {
			seen[a.AppID] = a
		}
	}
	var out []App
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[id])
	}
	return out
}

// LoadRegistry reads the merchants of dir. Two layouts:
//
//   - a folder of merchants: dir/<name>/merchant.json (with that merchant's
//     key files beside it), one folder per merchant, provider and
//     sub-merchant; <name> is wxflow's name of the merchant (1–32 of
//     [a-z0-9_-]);
//   - one merchant: dir/merchant.json itself, named single (the layout of a
//     deployment of one merchant).
//
// A merchant whose folder is broken is kept in Broken and left out of the
// rest; so are the sub-merchants of a broken provider, and every merchant
// of a clash between them (one appid, mchid or sub_mchid bound twice).
// LoadRegistry fails only when dir cannot be read or holds no merchant at all.
func LoadRegistry(dir, single string) (*Registry, error) {
	r := NewRegistry()
	if _, err := os.Stat(filepath.Join(dir, MerchantFile)); err == nil {
		m, err := LoadMerchant(single, dir)
		if err != nil {
			r.broken[single] = err
		} else {
			r.merchants[single] = m
		}
		return r, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMerchantConfig, err)
	}
	configs := map[string]MerchantConfig{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name, sub := e.Name(), filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(sub, MerchantFile)); err != nil {
			continue // not a merchant folder
		}
		if !ValidMerchantName(name) {
			r.broken[name] = fmt.Errorf("%w: folder name %q: want 1-32 of [a-z0-9_-]", ErrMerchantConfig, name)
			continue
		}
		cfg, err := ReadMerchantConfig(sub)
		if err != nil {
			r.broken[name] = err
			continue
		}
		configs[name] = cfg
		if cfg.Kind == MerchantSub {
			continue // loaded below, with its provider
		}
		m, err := LoadMerchant(name, sub)
		if err != nil {
			r.broken[name] = err
			continue
		}
		if m.Kind == MerchantProvider {
			r.providers[name] = m
		} else {
			r.merchants[name] = m
		}
	}
	for name, cfg := range configs {
		if cfg.Kind != MerchantSub {
			continue
		}
		m, err := subMerchant(name, cfg, r)
		if err != nil {
			r.broken[name] = err
			continue
		}
		r.merchants[name] = m
	}
	r.checkClashes()
	r.breakOrphans()
	if len(r.merchants) == 0 && len(r.broken) == 0 {
		return nil, fmt.Errorf("%w: no merchant in %s: want %s there or in <name>/ folders", ErrMerchantConfig, dir, MerchantFile)
	}
	return r, nil
}

// subMerchant builds a sub-merchant from its config and its provider's keys.
func subMerchant(name string, cfg MerchantConfig, r *Registry) (*Merchant, error) {
	m, err := merchantOf(name, cfg)
	if err != nil {
		return nil, err
	}
	p, ok := r.providers[cfg.Provider]
	if !ok {
		if perr, broken := r.broken[cfg.Provider]; broken {
			return nil, fmt.Errorf("%w: its provider %s is broken: %w", ErrMerchantConfig, cfg.Provider, perr)
		}
		return nil, fmt.Errorf("%w: provider %q is not a merchant of kind %s here", ErrMerchantConfig, cfg.Provider, MerchantProvider)
	}
	if len(p.OwnApps()) == 0 {
		return nil, fmt.Errorf("%w: provider %s has no app to be sp_appid", ErrMerchantConfig, p.Name)
	}
	for _, a := range m.Apps {
		if _, shared := p.App(a.AppID); shared {
			return nil, fmt.Errorf("%w: appid %s is its provider's (sp_appid), shared by every sub-merchant of %s: list only the sub-merchant's own apps (sub_appid)",
				ErrMerchantConfig, a.AppID, p.Name)
		}
	}
	own := m.Apps
	*m = *p // the provider's mchid and every key: partner mode signs as the provider
	m.Name, m.Kind, m.Provider, m.SubMchID = name, MerchantSub, p.Name, cfg.SubMchID
	m.Apps, m.SpApps = own, p.OwnApps()
	m.AppID, m.AppSecret = "", ""
	if len(own) > 0 {
		m.AppID, m.AppSecret = own[0].AppID, own[0].AppSecret
	} else {
		m.AppID, m.AppSecret = m.SpApps[0].AppID, m.SpApps[0].AppSecret
	}
	return m, nil
}

// checkClashes moves to Broken every merchant of a clash: an appid bound to
// two merchants (a provider's apps are shared by its own sub-merchants, as
// WeChat allows), one mchid for two merchants, one sub_mchid twice under a
// provider. WeChat binds each to one; wxflow could not tell which is meant.
func (r *Registry) checkClashes() {
	clash := func(what string, owners map[string][]string) {
		for key, names := range owners {
			if len(names) < 2 {
				continue
			}
			slices.Sort(names)
			err := fmt.Errorf("%w: %s %s belongs to %s", ErrMerchantConfig, what, key, strings.Join(names, " and "))
			for _, n := range names {
				delete(r.merchants, n)
				delete(r.providers, n)
				r.broken[n] = err
			}
		}
	}
	apps, mchids, subs := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, m := range append(r.Merchants(), r.Providers()...) {
		for _, a := range m.Apps {
			apps[a.AppID] = append(apps[a.AppID], m.Name)
		}
		if m.Partner() {
			subs[m.MchID+"/"+m.SubMchID] = append(subs[m.MchID+"/"+m.SubMchID], m.Name)
		} else {
			mchids[m.MchID] = append(mchids[m.MchID], m.Name)
		}
	}
	clash("appid", apps)
	clash("mchid", mchids)
	clash("sub_mchid", subs)
}

// breakOrphans moves to Broken the sub-merchants whose provider a clash
// broke after they were loaded with its keys.
func (r *Registry) breakOrphans() {
	for name, m := range r.merchants {
		if perr, broken := r.broken[m.Provider]; m.Partner() && broken {
			delete(r.merchants, name)
			r.broken[name] = fmt.Errorf("%w: its provider %s is broken: %w", ErrMerchantConfig, m.Provider, perr)
		}
	}
}

// ValidMerchantName reports whether name can name a merchant: 1–32 of
// [a-z0-9_-], starting with a letter or a digit, so that it is safe in
// folder names, URLs and NATS subjects (wxflow.evt.<merchant>.…).
func ValidMerchantName(name string) bool {
	if len(name) == 0 || len(name) > 32 || name[0] == '-' || name[0] == '_' {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
