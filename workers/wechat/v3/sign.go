package v3

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// SchemaName prefixes the Authorization header of every v3 request.
const SchemaName = "WECHATPAY2-SHA256-RSA2048"

// MaxSkew is WeChat's clock tolerance: a v3 timestamp at or beyond 300 s from
// now is refused (WeChat Pay v3 request signing and answer verification).
const MaxSkew = 300 * time.Second

// SignTestPrefix marks WeChat's probe signatures, which must never verify.
const SignTestPrefix = "WECHATPAY/SIGNTEST/"

// SignMessage signs message with SHA256withRSA (PKCS#1 v1.5) and returns it
// in base64. key is an *rsa.PrivateKey or the merchant's Signer (OpenSSL in
// a build with the openssl tag).
func SignMessage(key crypto.Signer, message string) (string, error) {
	sum := sha256.Sum256([]byte(message))
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("v3: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// verifyMessage checks a base64 SHA256withRSA signature.
func verifyMessage(pub *rsa.PublicKey, message, signature string) error {
	if strings.HasPrefix(signature, SignTestPrefix) {
		return fmt.Errorf("%w: WeChat probe signature", wechat.ErrSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", wechat.ErrSignature)
	}
	sum := sha256.Sum256([]byte(message))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("%w: %w", wechat.ErrSignature, err)
	}
	return nil
}

// RequestMessage is the five-line message a v3 request signs: method, URL
// path with query, timestamp, nonce, body, each followed by "\n".
func RequestMessage(method, canonicalURL string, timestamp int64, nonce string, body []byte) string {
	return method + "\n" + canonicalURL + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + nonce + "\n" + string(body) + "\n"
}

// ResponseMessage is the three-line message of responses and notifications.
func ResponseMessage(timestamp int64, nonce string, body []byte) string {
	return strconv.FormatInt(timestamp, 10) + "\n" + nonce + "\n" + string(body) + "\n"
}

// AuthorizationHeader builds the Authorization header value of a v3 request.
func AuthorizationHeader(mchID, serialNo, nonce string, timestamp int64, signature string) string {
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%d",serial_no="%s",signature="%s"`,
		SchemaName, mchID, nonce, timestamp, serialNo, signature)
}

// Authorization is a parsed Authorization header.
type Authorization struct {
	MchID, NonceStr, SerialNo, Signature string
	Timestamp                            int64
}

// ParseAuthorization reads an Authorization header; errors wrap wechat.ErrMalformed.
func ParseAuthorization(header string) (Authorization, error) {
	rest, ok := strings.CutPrefix(header, SchemaName+" ")
	if !ok {
		return Authorization{}, fmt.Errorf("%w: authorization schema", wechat.ErrMalformed)
	}
	var a Authorization
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || seen[k] {
			return Authorization{}, fmt.Errorf("%w: authorization field %q", wechat.ErrMalformed, part)
		}
		seen[k] = true
		v = v[1 : len(v)-1]
		switch k {
		case "mchid":
			a.MchID = v
		case "nonce_str":
			a.NonceStr = v
		case "serial_no":
			a.SerialNo = v
		case "signature":
			a.Signature = v
		case "timestamp":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Authorization{}, fmt.Errorf("%w: timestamp %q", wechat.ErrMalformed, v)
			}
			a.Timestamp = ts
		}
	}
	if a.MchID == "" || a.NonceStr == "" || a.SerialNo == "" || a.Signature == "" || a.Timestamp == 0 {
		return Authorization{}, fmt.Errorf("%w: authorization lacks a field", wechat.ErrMalformed)
	}
	return a, nil
}

// fresh checks a timestamp against WeChat's ±5 minute window.
func fresh(ts int64, now time.Time) error {
	if math.Abs(float64(now.Unix()-ts)) >= MaxSkew.Seconds() {
		return fmt.Errorf("%w: timestamp %d, now %d", wechat.ErrStale, ts, now.Unix())
	}
	return nil
}

// VerifyRequest checks a request's signature and timestamp, as WeChat does
// (the simulator uses it).
func VerifyRequest(pub *rsa.PublicKey, method, canonicalURL string, body []byte, a Authorization, now time.Time) error {
	if err := fresh(a.Timestamp, now); err != nil {
		return err
	}
	return verifyMessage(pub, RequestMessage(method, canonicalURL, a.Timestamp, a.NonceStr, body), a.Signature)
}

// VerifyResponse checks the Wechatpay-* headers of a response or notification
// over the raw body: timestamp within the window, then the signature.
func VerifyResponse(pub *rsa.PublicKey, header http.Header, body []byte, now time.Time) error {
	ts, err := strconv.ParseInt(header.Get("Wechatpay-Timestamp"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: Wechatpay-Timestamp %q", wechat.ErrSignature, header.Get("Wechatpay-Timestamp"))
	}
	if err := fresh(ts, now); err != nil {
		return err
	}
	if st := header.Get("Wechatpay-Signature-Type"); st != "" && st != SchemaName {
		return fmt.Errorf("%w: signature type %q", wechat.ErrSignature, st)
	}
	return verifyMessage(pub, ResponseMessage(ts, header.Get("Wechatpay-Nonce"), body), header.Get("Wechatpay-Signature"))
}

// SignResponseHeaders returns the headers WeChat adds to a response or a
// notification, signed with the WeChat Pay private key named serial.
func SignResponseHeaders(key *rsa.PrivateKey, serial string, body []byte, now time.Time) (http.Header, error) {
	nonce := NonceStr()
	sig, err := SignMessage(key, ResponseMessage(now.Unix(), nonce, body))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Serial", serial)
	h.Set("Wechatpay-Signature-Type", SchemaName)
	h.Set("Request-ID", "sim-"+nonce[:16])
	return h, nil
}

const nonceAlphabet = "0123456789ABCDEF"

// NonceStr returns 32 random upper-case hex characters, as the SDKs send.
func NonceStr() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = nonceAlphabet[b[i]&15]
	}
	return string(b[:])
}
