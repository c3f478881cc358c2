package demo

import (
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// Payer kinds of a lane: how WeChat names the payer of its orders.
const (
	PayerOpenID    = "openid"     // a direct merchant's payer, in its own app
	PayerSubOpenID = "sub_openid" // a sub-merchant's payer, in the sub-merchant's own app (sub_appid)
	PayerSpOpenID  = "sp_openid"  // a sub-merchant's payer, in its provider's app (sp_appid)
)

// Lane is one way payers reach a merchant: the merchant, the app its payers
// pay in, and so which identities WeChat must record for each of its orders
// and refunds. The demo spreads its orders round-robin over the lanes, so
// that a crossing between any two of them shows.
type Lane struct {
	Merchant string
	AppID    string
	// Kind is the app's kind: an Official Account's payers come with OAuth
	// codes and pay through JSAPI, a mini-program's with wx.login codes.
	Kind  wechat.AppKind
	Payer string // PayerOpenID, PayerSubOpenID or PayerSpOpenID
	// What WeChat must record for the lane's orders and refunds: the
	// merchant number (a sub-merchant's provider's), the sub-merchant's own
	// number, the appid (a sub-merchant's sp_appid) and sub_appid.
	MchID, SubMchID, WantAppID, WantSubAppID string
}

// Client is the front end the lane's payers pay through.
func (l Lane) Client() engine.Client {
	if l.Kind == wechat.AppMiniProgram {
		return engine.ClientMiniProgram
	}
	return engine.ClientJSAPI
}

// String names the lane in the demo's output: merchant/app-kind/payer.
func (l Lane) String() string {
	kind := "oa"
	if l.Kind == wechat.AppMiniProgram {
		kind = "mp"
	}
	return l.Merchant + "/" + kind + "/" + l.Payer
}

// Lanes lists every (merchant, app, payer kind) of the registry's
// order-taking merchants, by merchant name: each own Official Account and
// mini-program (an app of the single-app layout, which serves both, twice),
// and for a sub-merchant each of its provider's apps too (sp_openid). Mobile
// apps are left out: wxflow's JSAPI flow does not pay through them.
func Lanes(reg *wechat.Registry) []Lane {
	var out []Lane
	kinds := func(k wechat.AppKind) []wechat.AppKind {
		switch k {
		case "":
			return []wechat.AppKind{wechat.AppOfficialAccount, wechat.AppMiniProgram}
		case wechat.AppOfficialAccount, wechat.AppMiniProgram:
			return []wechat.AppKind{k}
		}
		return nil
	}
	for _, m := range reg.Merchants() {
		for _, a := range m.OwnApps() {
			for _, k := range kinds(a.Kind) {
				l := Lane{Merchant: m.Name, AppID: a.AppID, Kind: k, Payer: PayerOpenID, MchID: m.MchID, WantAppID: a.AppID}
				if m.Partner() {
					l.Payer, l.SubMchID, l.WantAppID, l.WantSubAppID = PayerSubOpenID, m.SubMchID, m.SpAppID(), a.AppID
				}
				out = append(out, l)
			}
		}
		if !m.Partner() {
			continue
		}
		for _, a := range m.SpApps {
			for _, k := range kinds(a.Kind) {
				out = append(out, Lane{Merchant: m.Name, AppID: a.AppID, Kind: k, Payer: PayerSpOpenID,
					MchID: m.MchID, SubMchID: m.SubMchID, WantAppID: a.AppID})
			}
		}
	}
	return out
}
