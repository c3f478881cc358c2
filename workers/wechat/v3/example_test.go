package v3_test

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// exampleMerchantKey stands for the merchant's apiclient_key.pem: here the
// test-only key of the shared vectors.
func exampleMerchantKey() *rsa.PrivateKey {
	raw, err := os.ReadFile("../testdata/vectors.json")
	if err != nil {
		panic(err)
	}
	var vs struct {
		Keys struct {
			V3 struct {
				Key string `json:"merchant_private_key_pem"`
			} `json:"v3"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		panic(err)
	}
	key, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.Key))
	if err != nil {
		panic(err)
	}
	return key
}

// After PrepayJSAPI, the page needs these six values for
// WeixinJSBridge.invoke("getBrandWCPayRequest", …) or, in a mini-program,
// wx.requestPayment. The appId must be the one the prepay was made for; in
// production the nonce is NonceStr() and the timestamp the current time.
func ExamplePayParams() {
	p, err := v3.PayParams(exampleMerchantKey(), "wxd678efh567hg6787", "wx201410272009395522657a690389285100",
		"5K8264ILTKCH16CQ2502SI8ZNMTM67VS", 1414561699)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range []string{"appId", "timeStamp", "nonceStr", "package", "signType"} {
		fmt.Printf("%s=%s\n", k, p[k])
	}
	fmt.Println("paySign=" + p["paySign"])
	// Output:
	// appId=wxd678efh567hg6787
	// timeStamp=1414561699
	// nonceStr=5K8264ILTKCH16CQ2502SI8ZNMTM67VS
	// package=prepay_id=wx201410272009395522657a690389285100
	// signType=RSA
	// paySign=CDmexd3zKwGTaThdAc66Tq1LucYt9kAXhrGcdBN5x+IUrGyn2HAsVwNJYh5DwEcOpR5AdHkg6lW5UFrkwpx26qCY29G5FrojhjaABrhvIQztR4bQEmJJWgwEj/3ElvnH9zqPQU78ns0KcSBw4Cau5dkixe+QXV5+pbKeP/V+3q8uZ965CQ/s9L/fOfqiOh+DSZRskKBR+L8BJUeJYkVdGnzfomnWwicI3Jmy9jj/s+QJobKi1DbqOssKqPgUf08Jz+bjUlGmNLhD9Rw1eeWjJTh0PLBCjtj0N9xbI4n9HgYkUNQ014Ne1gennMD6KAent+BQN9xbt8EF5ggR1zO8pw==
}
