package v3

import (
	"crypto"
	"strconv"
)

// PayParams builds the v3 front-end pay parameters (调起支付): appId,
// timeStamp, nonceStr, package, signType "RSA", and paySign, the merchant's
// SHA256withRSA signature over appId, timeStamp, nonceStr and package.
func PayParams(key crypto.Signer, appID, prepayID, nonce string, timestamp int64) (map[string]string, error) {
	ts := strconv.FormatInt(timestamp, 10)
	pkg := "prepay_id=" + prepayID
	sig, err := SignMessage(key, appID+"\n"+ts+"\n"+nonce+"\n"+pkg+"\n")
	if err != nil {
		return nil, err
	}
	return map[string]string{"appId": appID, "timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": "RSA", "paySign": sig}, nil
}
