package v2

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/wxflow/wxflow/workers/wechat"
)

// SignType is the v2 signature algorithm (sign_type).
type SignType string

// The two algorithms WeChat Pay v2 accepts.
const (
	SignMD5        SignType = "MD5"
	SignHMACSHA256 SignType = "HMAC-SHA256"
)

// StringToSign builds stringSignTemp (v2 签名算法): every parameter but
// "sign" with a non-empty value, in ASCII order of names, joined as k=v with
// '&', raw (not URL-encoded), then "&key=" and the API key.
func StringToSign(params map[string]string, apiKey string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
		b.WriteByte('&')
	}
	b.WriteString("key=")
	b.WriteString(apiKey)
	return b.String()
}

// Sign returns the upper-case hex signature of params with the API key.
// With SignHMACSHA256 the caller must also send sign_type=HMAC-SHA256, which
// is itself signed.
func Sign(params map[string]string, apiKey string, t SignType) string {
	msg := StringToSign(params, apiKey)
	if t == SignHMACSHA256 {
		mac := hmac.New(sha256.New, []byte(apiKey))
		mac.Write([]byte(msg))
		return strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
	}
	sum := md5.Sum([]byte(msg))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Verify checks params["sign"] in constant time. The algorithm is sign_type
// when present, else told by the length of the sign (64 hex characters →
// HMAC-SHA256, 32 → MD5): WeChat has been seen to MD5-sign notifications of
// HMAC orders. Any other algorithm is refused.
func Verify(params map[string]string, apiKey string) error {
	got := params["sign"]
	if got == "" {
		return fmt.Errorf("%w: no sign", wechat.ErrSignature)
	}
	var t SignType
	switch st := params["sign_type"]; {
	case st == string(SignMD5) || st == string(SignHMACSHA256):
		t = SignType(st)
	case st != "":
		return fmt.Errorf("%w: unsupported sign_type %q", wechat.ErrSignature, st)
	case len(got) == 64:
		t = SignHMACSHA256
	case len(got) == 32:
		t = SignMD5
	default:
		return fmt.Errorf("%w: sign has %d characters", wechat.ErrSignature, len(got))
	}
	want := Sign(params, apiKey, t)
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), []byte(want)) != 1 {
		return fmt.Errorf("%w: %s sign mismatch", wechat.ErrSignature, t)
	}
	return nil
}

const nonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NonceStr returns 32 random characters of [0-9A-Za-z] (nonce_str ≤ 32).
func NonceStr() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	for i := range b {
		b[i] = nonceAlphabet[int(b[i])%len(nonceAlphabet)]
	}
	return string(b[:])
}
