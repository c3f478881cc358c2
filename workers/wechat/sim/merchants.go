package sim

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"slices"

	"github.com/wxflow/wxflow/workers/wechat"
)

// WeChat's view of the merchants: every direct merchant and provider signs
// its own calls with its own keys, and WeChat Pay signs its answers and
// notifications to it with a key of its own for that merchant; a
// sub-merchant has a sub_mchid under its provider and the apps bound to it,
// and no key (its provider signs everything).

// party is a merchant that calls WeChat Pay: a direct merchant or a provider.
type party struct {
	m     *wechat.Merchant
	wxKey *rsa.PrivateKey             // WeChat Pay's signing key for this merchant
	subs  map[string]*wechat.Merchant // a provider's sub-merchants, by sub_mchid
}

func (p *party) provider() bool { return p.m.Kind == wechat.MerchantProvider }

// owns reports whether appid is bound to the party's mchid (appid / sp_appid).
func (p *party) owns(appid string) bool {
	return slices.ContainsFunc(p.m.OwnApps(), func(a wechat.App) bool { return a.AppID == appid })
}

// subOwns reports whether appid is bound to sub-merchant sub (sub_appid).
func subOwns(sub *wechat.Merchant, appid string) bool {
	return slices.ContainsFunc(sub.Apps, func(a wechat.App) bool { return a.AppID == appid })
}

// directory is every merchant and app the simulator serves; immutable after New.
type directory struct {
	parties map[string]*party     // by mchid
	apps    map[string]wechat.App // every app, by appid
}

func newDirectory(k *Keys) *directory {
	d := &directory{parties: map[string]*party{}, apps: map[string]wechat.App{}}
	for _, m := range append(k.Registry.Merchants(), k.Registry.Providers()...) {
		for _, a := range m.OwnApps() {
			d.apps[a.AppID] = a
		}
		if m.Partner() {
			continue
		}
		d.parties[m.MchID] = &party{m: m, wxKey: k.WechatPayKeys[m.MchID], subs: map[string]*wechat.Merchant{}}
	}
	for _, m := range k.Registry.Merchants() {
		if m.Partner() {
			if p := d.parties[m.MchID]; p != nil {
				p.subs[m.SubMchID] = m
			}
		}
	}
	return d
}

// openIDFor is the openid of simulated user user in app appid: one person
// has a different openid in every app, as on WeChat.
func openIDFor(user, appid string) string {
	sum := sha256.Sum256([]byte("wxflow-sim-user|" + user + "|" + appid))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// okey keys orders and refunds: WeChat's numbers are unique per merchant
// number (a sub-merchant's per its provider's sp_mchid).
func okey(mchid, no string) string { return mchid + "|" + no }
