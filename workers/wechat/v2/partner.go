package v2

import (
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat"
)

// ErrUnknownApp is wechat.ErrUnknownApp: the order's app is neither the
// merchant's own nor, for a sub-merchant, its provider's.
var ErrUnknownApp = wechat.ErrUnknownApp

// owns checks that a message naming these identities (empty ones when
// emptyOK: a field WeChat did not send) is for merchant m: mch_id,
// sub_mch_id, and apps that are m's in the places partner mode puts them
// (appid a provider's app, sub_appid one of the sub-merchant's own). Which
// app the order was in is the caller's to check.
func owns(m *wechat.Merchant, appid, mchid, subAppID, subMchID string, emptyOK bool) error {
	skip := func(v string) bool { return emptyOK && v == "" }
	switch {
	case mchid != m.MchID && !skip(mchid):
		return fmt.Errorf("%w: for mch_id %q, not %q", wechat.ErrForeign, mchid, m.MchID)
	case subMchID != m.SubMchID && !skip(subMchID):
		return fmt.Errorf("%w: for sub_mch_id %q, not %q", wechat.ErrForeign, subMchID, m.SubMchID)
	case skip(appid):
	case !m.Partner():
		if _, ok := m.App(appid); !ok {
			return fmt.Errorf("%w: for appid %q, not an app of %s", wechat.ErrForeign, appid, m.Name)
		}
	case !m.IsSpApp(appid):
		return fmt.Errorf("%w: appid %q is not an app of %s's provider", wechat.ErrForeign, appid, m.Name)
	}
	if subAppID != "" {
		if _, ok := m.App(subAppID); !ok || !m.Partner() || m.IsSpApp(subAppID) {
			return fmt.Errorf("%w: sub_appid %q is not an app of %s", wechat.ErrForeign, subAppID, m.Name)
		}
	}
	return nil
}

// payerOpenID is the payer's openid under the app the order was paid in:
// sub_openid when WeChat names a sub_appid, else openid.
func payerOpenID(p map[string]string) string {
	if p["sub_appid"] != "" {
		return p["sub_openid"]
	}
	return p["openid"]
}
