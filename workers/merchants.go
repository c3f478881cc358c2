package workers

import (
	"errors"
	"fmt"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
)

// Merchant is what the workers need of one merchant: its configuration,
// its pay calls, and the platform client of each app its payers pay in.
type Merchant struct {
	*wechat.Merchant
	Payments *pay.Payments
	// Apps are the platform clients (OAuth, jscode2session) by appid: the
	// merchant's own apps and, for a sub-merchant, its provider's.
	Apps map[string]*mp.Client
}

// Merchants finds an order's merchant: one deployment serves many, and
// every order names its own. A merchant that is unknown or whose
// configuration is broken is an error wrapping wechat.ErrUnknownMerchant or
// wechat.ErrMerchantUnavailable: its orders fail with
// FlagMerchantMisconfigured, the others go on.
type Merchants interface {
	Merchant(name string) (*Merchant, error)
}

// MerchantSet is a fixed set of merchants by name: the Merchants of a
// worker process (internal/stack builds it from the registry) and of tests.
type MerchantSet struct {
	ByName map[string]*Merchant
	// Broken are the merchants whose configuration failed, with why.
	Broken map[string]error
}

// Merchant implements Merchants.
func (s *MerchantSet) Merchant(name string) (*Merchant, error) {
	if m, ok := s.ByName[name]; ok {
		return m, nil
	}
	if err, ok := s.Broken[name]; ok {
		return nil, fmt.Errorf("%w: %s: %w", wechat.ErrMerchantUnavailable, name, err)
	}
	return nil, fmt.Errorf("%w: %q", wechat.ErrUnknownMerchant, name)
}

// OneMerchant is the Merchants of a deployment of one merchant with one
// platform client for all its apps (tests, and the bench's ceiling).
func OneMerchant(m *wechat.Merchant, p *pay.Payments, platform *mp.Client) *MerchantSet {
	apps := map[string]*mp.Client{}
	for _, a := range append(m.OwnApps(), m.SpApps...) {
		apps[a.AppID] = platform
	}
	return &MerchantSet{ByName: map[string]*Merchant{m.Name: {Merchant: m, Payments: p, Apps: apps}}}
}

// FlagMerchantMisconfigured is raised on an order that failed because its
// merchant's configuration is wrong (engine.FlagMerchantMisconfigured).
const FlagMerchantMisconfigured = engine.FlagMerchantMisconfigured

// misconfigured reports whether err says the merchant's configuration, not
// the order, is wrong.
func misconfigured(err error) bool {
	if errors.Is(err, wechat.ErrUnknownMerchant) || errors.Is(err, wechat.ErrMerchantUnavailable) ||
		errors.Is(err, wechat.ErrSignature) {
		return true
	}
	switch wechat.CodeOf(err) {
	case "APPID_MCHID_NOT_MATCH", "MCH_NOT_EXISTS", "NO_AUTH", "INVALID_REQUEST_APPID", "40013", "40125":
		return true // WeChat: appid not bound to mchid, no such merchant, no relation to the sub-merchant; bad appid / appsecret
	}
	return false
}

// CodeAppNotOfMerchant is the failure code of an order whose app is not one
// of its merchant's (a shop over NATS named another's appid): the order
// fails; the shop creates it again with the right app.
const CodeAppNotOfMerchant = "APPID_NOT_OF_MERCHANT"

func errAppNotOfMerchant(format string, args ...any) error {
	return &wechat.Error{API: "app", Code: CodeAppNotOfMerchant, Message: fmt.Sprintf(format, args...)}
}

// appOf is the app an order's payer pays in: the order's AppID, which must
// be one of its merchant's (or its provider's) apps; for an order that
// names none, the merchant's app for the order's front end (a mini-program
// for the miniprogram client and for wx.login codes, else an Official
// Account). Every worker resolves it alike, so that the openid, the prepay
// and the paySign agree.
func appOf(m *Merchant, o engine.Order) (wechat.App, error) {
	if a, ok := m.PayerApp(o.AppID, payerKind(o)); ok {
		return a, nil
	}
	if o.AppID != "" {
		return wechat.App{}, errAppNotOfMerchant("appid %s is not an app of merchant %s", o.AppID, m.Name)
	}
	return wechat.App{}, errAppNotOfMerchant("merchant %s has no %s app", m.Name, payerKind(o))
}

// payerKind is the kind of app an order's payer is in: a mini-program for
// the miniprogram front end and a wx.login code, else an Official Account.
func payerKind(o engine.Order) wechat.AppKind {
	if o.Client == engine.ClientMiniProgram || o.LoginCode != "" {
		return wechat.AppMiniProgram
	}
	return wechat.AppOfficialAccount
}

// platformOf is the platform client of the order's app.
func platformOf(m *Merchant, o engine.Order) (*mp.Client, error) {
	a, err := appOf(m, o)
	if err != nil {
		return nil, err
	}
	c, ok := m.Apps[a.AppID]
	if !ok {
		return nil, errAppNotOfMerchant("no platform client for appid %s", a.AppID)
	}
	return c, nil
}
