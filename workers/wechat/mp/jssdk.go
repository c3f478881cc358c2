package mp

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// JSSDKSignature signs a page for wx.config (the JS-SDK signature): SHA-1, lower
// hex, over jsapi_ticket, noncestr, timestamp and url in that order, the URL
// raw (not encoded) and without its #fragment.
func JSSDKSignature(ticket, nonce string, timestamp int64, pageURL string) string {
	pageURL, _, _ = strings.Cut(pageURL, "#")
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + nonce +
		"&timestamp=" + strconv.FormatInt(timestamp, 10) + "&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// JSSDKConfig is the object a page passes to wx.config (camelCase on the JS side).
type JSSDKConfig struct {
	AppID     string `json:"appId"`
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// JSConfig builds the wx.config object for a page: the very nonce and
// timestamp that were signed.
func JSConfig(appID, ticket, pageURL string, now time.Time, nonce string) JSSDKConfig {
	ts := now.Unix()
	return JSSDKConfig{AppID: appID, Timestamp: ts, NonceStr: nonce, Signature: JSSDKSignature(ticket, nonce, ts, pageURL)}
}
