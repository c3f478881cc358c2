package v2

import "strconv"

// PayParams builds the front-end pay parameters of WeChat's JSAPI /
// mini-program payment (调起支付) for WeixinJSBridge getBrandWCPayRequest and
// wx.requestPayment: appId, timeStamp (a string, capital S), nonceStr, package
// ("prepay_id=…"), signType (the unified order's) and paySign over the other
// five.
func PayParams(appID, prepayID, nonce string, timestamp int64, apiKey string, t SignType) map[string]string {
	p := map[string]string{
		"appId":     appID,
		"timeStamp": strconv.FormatInt(timestamp, 10),
		"nonceStr":  nonce,
		"package":   "prepay_id=" + prepayID,
		"signType":  string(t),
	}
	p["paySign"] = Sign(p, apiKey, t)
	return p
}
