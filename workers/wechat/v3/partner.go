package v3

import (
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat"
)

// ErrUnknownApp is wechat.ErrUnknownApp: the order's app is neither the
// merchant's own nor, for a sub-merchant, its provider's.
var ErrUnknownApp = wechat.ErrUnknownApp

// Identity is who a payment is for, read alike from WeChat's direct shape
// (appid, mchid, payer.openid) and its partner shape (sp_appid, sp_mchid,
// sub_appid, sub_mchid, payer.sp_openid / payer.sub_openid).
type Identity struct {
	// MchID is mchid, or sp_mchid in partner mode.
	MchID string
	// SubMchID is sub_mchid; empty in direct mode.
	SubMchID string
	// AppID is appid, or sp_appid in partner mode.
	AppID string
	// SubAppID is sub_appid: set when the payer paid in a sub-merchant's app.
	SubAppID string
	// OpenID is the payer under the app the order was paid in: sub_openid
	// when there is a sub_appid, else openid / sp_openid.
	OpenID string
}

// partnerShape reports whether t came in WeChat's partner shape.
func (t Transaction) partnerShape() bool {
	return t.SpMchID != "" || t.SubMchID != "" || t.SpAppID != "" || t.SubAppID != "" ||
		t.Payer.SpOpenID != "" || t.Payer.SubOpenID != ""
}

// directShape reports whether t carries any field of WeChat's direct shape.
func (t Transaction) directShape() bool {
	return t.MchID != "" || t.AppID != "" || t.Payer.OpenID != ""
}

// Identity reads who t is for, from either shape. A transaction carrying
// both shapes at once is read as partner; [Client.ParsePaymentNotify]
// refuses such a mix.
func (t Transaction) Identity() Identity {
	if !t.partnerShape() {
		return Identity{MchID: t.MchID, AppID: t.AppID, OpenID: t.Payer.OpenID}
	}
	id := Identity{MchID: t.SpMchID, SubMchID: t.SubMchID, AppID: t.SpAppID, SubAppID: t.SubAppID, OpenID: t.Payer.SpOpenID}
	if t.SubAppID != "" {
		id.OpenID = t.Payer.SubOpenID
	}
	return id
}

// Identity reads whose refund r is: MchID (mchid or sp_mchid) and SubMchID.
func (r RefundNotification) Identity() Identity {
	if r.SpMchID != "" || r.SubMchID != "" {
		return Identity{MchID: r.SpMchID, SubMchID: r.SubMchID}
	}
	return Identity{MchID: r.MchID}
}

// ownsMerchant checks that a message naming id is for merchant m: its
// merchant number(s), and (when app is set) that the apps are m's in the
// places partner mode puts them. It says nothing of which order or app the
// payment was for: that is the caller's ([pay.Payments.Owns]).
func ownsMerchant(m *wechat.Merchant, id Identity, app bool) error {
	switch {
	case id.MchID != m.MchID:
		return fmt.Errorf("%w: for mchid %q, not %q", wechat.ErrForeign, id.MchID, m.MchID)
	case id.SubMchID != m.SubMchID:
		return fmt.Errorf("%w: for sub_mchid %q, not %q", wechat.ErrForeign, id.SubMchID, m.SubMchID)
	case !app:
		return nil
	case !m.Partner():
		if _, ok := m.App(id.AppID); !ok || id.SubAppID != "" {
			return fmt.Errorf("%w: for appid %q sub_appid %q, not an app of %s", wechat.ErrForeign, id.AppID, id.SubAppID, m.Name)
		}
	case !m.IsSpApp(id.AppID):
		return fmt.Errorf("%w: sp_appid %q is not an app of %s's provider", wechat.ErrForeign, id.AppID, m.Name)
	case id.SubAppID != "":
		if _, ok := m.App(id.SubAppID); !ok || m.IsSpApp(id.SubAppID) {
			return fmt.Errorf("%w: sub_appid %q is not an app of %s", wechat.ErrForeign, id.SubAppID, m.Name)
		}
	}
	return nil
}
