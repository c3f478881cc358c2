package pay

import (
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat"
)

// Owns says why t, a payment WeChat reported (notification or query), is
// not this merchant's order placed for a payer in app appid (empty = the
// merchant's AppID); nil when it is. It checks exactly what the order was
// placed with: mchid (sp_mchid), sub_mchid, and appid with sub_appid as
// wechat.Merchant.OrderApps puts them: a notification naming another sub-merchant of
// the same provider, or the right merchant but another app, is refused
// with an error matching wechat.ErrForeign. The amount is the caller's.
func (p *Payments) Owns(t Transaction, appid string) error { return Owns(p.cfg.Merchant, t, appid) }

// Owns is [Payments.Owns] for whoever holds the merchant but not its
// Payments (the API, which verifies notifications with the merchant's clients).
func Owns(m *wechat.Merchant, t Transaction, appid string) error {
	if err := ownsMerchant(m, t.MchID, t.SubMchID); err != nil {
		return err
	}
	appID, subAppID, err := m.OrderApps(appid)
	if err != nil {
		return fmt.Errorf("%w: %w", wechat.ErrForeign, err)
	}
	if t.AppID != appID || t.SubAppID != subAppID {
		return fmt.Errorf("%w: for appid %q sub_appid %q, the order's are %q and %q",
			wechat.ErrForeign, t.AppID, t.SubAppID, appID, subAppID)
	}
	if t.OpenID == "" && t.State.Paid() {
		return fmt.Errorf("%w: a payment with no payer openid under app %q", wechat.ErrMalformed, appid)
	}
	return nil
}

// OwnsRefund says why n, a refund notification, is not this merchant's:
// another mchid (sp_mchid) or sub_mchid. nil when it is.
func (p *Payments) OwnsRefund(n RefundNotice) error { return OwnsRefund(p.cfg.Merchant, n) }

// OwnsRefund is [Payments.OwnsRefund] for whoever holds the merchant but
// not its Payments.
func OwnsRefund(m *wechat.Merchant, n RefundNotice) error {
	return ownsMerchant(m, n.MchID, n.SubMchID)
}

func ownsMerchant(m *wechat.Merchant, mchid, subMchID string) error {
	switch {
	case mchid != m.MchID:
		return fmt.Errorf("%w: for mchid %q, not %s's %q", wechat.ErrForeign, mchid, m.Name, m.MchID)
	case subMchID != m.SubMchID:
		return fmt.Errorf("%w: for sub_mchid %q, not %s's %q", wechat.ErrForeign, subMchID, m.Name, m.SubMchID)
	}
	return nil
}
