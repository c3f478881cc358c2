package mp_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

func TestJSSDKVectors(t *testing.T) {
	vs := wechattest.Load(t)
	for _, tc := range []struct{ id, urlField string }{
		{"jssdk_signature_official", "url"},
		{"jssdk_signature_fragment_stripped", "url_as_seen_in_browser"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			v := vs.ByID(t, tc.id)
			var in map[string]string
			v.Decode(t, "inputs", &in)
			ts, _ := strconv.ParseInt(in["timestamp"], 10, 64)
			if got := mp.JSSDKSignature(in["jsapi_ticket"], in["noncestr"], ts, in[tc.urlField]); got != v.String("expected") {
				t.Errorf("signature = %s, want %s", got, v.String("expected"))
			}
		})
	}
}

func TestAuthorizeURLOrder(t *testing.T) {
	got := mp.AuthorizeURL("https://open.weixin.qq.com", "wx520c15f417810387", "https://shop.example.com/cb?x=1", mp.ScopeBase, "o123")
	want := "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx520c15f417810387&redirect_uri=https%3A%2F%2Fshop.example.com%2Fcb%3Fx%3D1&response_type=code&scope=snsapi_base&state=o123#wechat_redirect"
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func ExampleJSSDKSignature() {
	fmt.Println(mp.JSSDKSignature("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
		"Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value#/order/42"))
	// Output: 0f9de62fce790f9a083d5c99e95740ceb90c27ed
}
