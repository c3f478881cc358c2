package demo

import (
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestLanes: dev's five merchants make the six lanes the demo spreads over,
// each with the identities WeChat must record (a sub-merchant's own app as
// sub_appid under the provider's sp_appid; a payer in the provider's app
// under that app alone); a folder of one merchant makes its two.
func TestLanes(t *testing.T) {
	k, err := sim.EnsureMerchants(t.TempDir(), sim.DevMerchants())
	if err != nil {
		t.Fatal(err)
	}
	m := func(name string) *wechat.Merchant {
		t.Helper()
		mm, err := k.Registry.Merchant(name)
		if err != nil {
			t.Fatal(err)
		}
		return mm
	}
	def, second, sub1, sub2 := m("default"), m("second"), m("provider-sub1"), m("provider-sub2")
	want := []Lane{
		{Merchant: "default", AppID: def.Apps[0].AppID, Kind: wechat.AppOfficialAccount, Payer: PayerOpenID, MchID: def.MchID, WantAppID: def.Apps[0].AppID},
		{Merchant: "default", AppID: def.Apps[1].AppID, Kind: wechat.AppMiniProgram, Payer: PayerOpenID, MchID: def.MchID, WantAppID: def.Apps[1].AppID},
		{Merchant: "provider-sub1", AppID: sub1.Apps[0].AppID, Kind: wechat.AppMiniProgram, Payer: PayerSubOpenID, MchID: sub1.MchID,
			SubMchID: sub1.SubMchID, WantAppID: sub1.SpAppID(), WantSubAppID: sub1.Apps[0].AppID},
		{Merchant: "provider-sub1", AppID: sub1.SpAppID(), Kind: wechat.AppOfficialAccount, Payer: PayerSpOpenID, MchID: sub1.MchID,
			SubMchID: sub1.SubMchID, WantAppID: sub1.SpAppID()},
		{Merchant: "provider-sub2", AppID: sub2.SpAppID(), Kind: wechat.AppOfficialAccount, Payer: PayerSpOpenID, MchID: sub2.MchID,
			SubMchID: sub2.SubMchID, WantAppID: sub2.SpAppID()},
		{Merchant: "second", AppID: second.Apps[0].AppID, Kind: wechat.AppOfficialAccount, Payer: PayerOpenID, MchID: second.MchID, WantAppID: second.Apps[0].AppID},
	}
	got := Lanes(k.Registry)
	if len(got) != len(want) {
		t.Fatalf("lanes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("lane %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if sub1.MchID != sub2.MchID || sub1.SubMchID == sub2.SubMchID {
		t.Fatalf("the sub-merchants should share a provider and differ in sub_mchid: %s/%s, %s/%s", sub1.MchID, sub1.SubMchID, sub2.MchID, sub2.SubMchID)
	}

	single, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lanes := Lanes(single.Registry)
	if len(lanes) != 2 || lanes[0].Kind != wechat.AppOfficialAccount || lanes[1].Kind != wechat.AppMiniProgram ||
		lanes[0].AppID != single.Merchant.AppID || lanes[0].Client() == lanes[1].Client() {
		t.Fatalf("one merchant's lanes: %+v", lanes)
	}
}
