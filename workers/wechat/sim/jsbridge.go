package sim

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/v2"
)

// The stand-in WeixinJSBridge: WeChat's in-app browser gives every page a
// global WeixinJSBridge, and WeChat's JS-SDK (jweixin) does all its work
// through WeixinJSBridge.invoke. A page opened in an ordinary browser has
// none, so GET /sim/jsbridge.js serves one that answers as WeChat's client
// does: preVerifyJSAPI (wx.config) and getBrandWCPayRequest (wx.chooseWXPay)
// are checked here, on the simulator, against the jsapi_ticket it issued and
// the prepay orders it holds; the script answers the rest itself.
//
// It is for pages in a browser (the demo shop, a shop's own pages under test),
// so its endpoints answer cross-origin requests (CORS) from any page: the
// simulator holds no secret a page could read, and POST /sim/pay was never
// guarded either.

//go:embed jsbridge.js
var jsBridgeScript []byte

// PrepayLifetime is how long a prepay_id can be paid (WeChat: 2 hours). It is
// not scaled: it bounds a person's time at the pay sheet, not WeChat's clock.
const PrepayLifetime = 2 * time.Hour

// bridgeInvoke is the body of POST /sim/jsbridge/invoke: one call of
// WeixinJSBridge.invoke(name, params, cb) that the script hands over.
type bridgeInvoke struct {
	Name   string                     `json:"name"`
	Params map[string]json.RawMessage `json:"params"`
	// URL is the page's location.href when the call was made:
	// preVerifyJSAPI checks the signature against it (without its #fragment),
	// as WeChat's client checks the page it shows.
	URL string `json:"url,omitempty"`
	// Choice is the payer's answer to the pay sheet of getBrandWCPayRequest:
	// "" asks only whether the sheet may open (the parameters are checked
	// and the answer is the sheet or WeChat's failure); "ok" pays through
	// the simulator's payer (POST /sim/pay), "fail" plays a card the bank
	// refuses, "cancel" closes the sheet.
	Choice string `json:"choice,omitempty"`
}

// BridgeSheet is what the stand-in pay sheet shows: the amount and the
// merchant, as WeChat's own sheet does.
type BridgeSheet struct {
	AmountFen int64  `json:"amount_fen"`
	MchID     string `json:"mchid"`
	// SubMchID is the sub-merchant paid, in partner mode.
	SubMchID string `json:"sub_mchid,omitempty"`
}

// BridgeAnswer is the simulator's answer to one bridge call: either the
// result object the script passes to the page's callback (ErrMsg, and
// ErrDesc for the console: the JS-SDK deletes err_desc before the page sees
// it), or, for a getBrandWCPayRequest without a choice, the sheet to show.
type BridgeAnswer struct {
	ErrMsg  string       `json:"err_msg,omitempty"`
	ErrDesc string       `json:"err_desc,omitempty"`
	Sheet   *BridgeSheet `json:"sheet,omitempty"`
}

// Raw results of WeChat's client, as the JS-SDK reads them: it keeps the text
// after the first ':' and drops a "fail_" prefix, so "fail_invalid signature"
// reaches the page as "config:invalid signature" / "chooseWXPay:invalid
// signature".
const (
	preVerifyOK       = "preVerifyJSAPI:ok"
	preVerifyBadSign  = "preVerifyJSAPI:fail_invalid signature"
	payOK             = "get_brand_wcpay_request:ok"
	payCancel         = "get_brand_wcpay_request:cancel"
	payFail           = "get_brand_wcpay_request:fail"
	payBadSign        = "get_brand_wcpay_request:fail_invalid signature"
	payBadAppID       = "get_brand_wcpay_request:fail_invalid appid"
	maxBridgeBodySize = 64 << 10
)

// handleJSBridgeScript serves the stand-in WeixinJSBridge. A page includes
// it before WeChat's JS-SDK; ?inject=now defines the bridge at once, the
// default (late) defines it when the document has loaded and then dispatches
// WeixinJSBridgeReady once, as WeChat's client does.
func (s *Sim) handleJSBridgeScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(jsBridgeScript)
}

// handleJSBridgeInvoke answers POST /sim/jsbridge/invoke (see bridgeInvoke).
// A malformed call is a 400 {"error"}; every WeChat outcome, success or not,
// is a 200 with the raw result object.
func (s *Sim) handleJSBridgeInvoke(w http.ResponseWriter, r *http.Request) {
	var in bridgeInvoke
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBridgeBodySize))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be one {\"name\", \"params\", \"url\", \"choice\"}: " + err.Error()})
		return
	}
	if in.Params == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "params must be an object"})
		return
	}
	var a BridgeAnswer
	switch in.Name {
	case "preVerifyJSAPI":
		if in.Choice != "" {
			err = errors.New("choice is for getBrandWCPayRequest")
			break
		}
		a, err = s.preVerify(in.Params, in.URL)
	case "getBrandWCPayRequest":
		a, err = s.brandPay(r.Context(), in.Params, in.Choice)
	default:
		err = fmt.Errorf("the simulator answers preVerifyJSAPI and getBrandWCPayRequest; the script answers %q itself", in.Name)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("jsbridge", "api", in.Name, "choice", in.Choice, "err_msg", a.ErrMsg, "why", a.ErrDesc)
	writeJSON(w, http.StatusOK, a)
}

// preVerify checks wx.config's signature as WeChat's client does: SHA-1 over
// a live jsapi_ticket this simulator issued for the appId, the nonce, the
// timestamp and the page's URL without its #fragment. An error is a
// malformed call; WeChat's refusals are answers.
func (s *Sim) preVerify(p map[string]json.RawMessage, pageURL string) (BridgeAnswer, error) {
	f, err := jsStrings(p, "verifyAppId", "verifyTimestamp", "verifyNonceStr", "verifySignature")
	if err != nil {
		return BridgeAnswer{}, err
	}
	u, err := url.Parse(pageURL)
	if err != nil || !u.IsAbs() || u.Scheme != "http" && u.Scheme != "https" {
		return BridgeAnswer{}, errors.New("url must be the page's absolute http(s) location.href")
	}
	page, _, _ := strings.Cut(pageURL, "#")
	bad := func(why string) (BridgeAnswer, error) {
		return BridgeAnswer{ErrMsg: preVerifyBadSign, ErrDesc: why}, nil
	}
	appID := f["verifyAppId"]
	if _, ok := s.dir.apps[appID]; !ok {
		return bad("appId is not an app of a merchant here")
	}
	ts, err := strconv.ParseInt(f["verifyTimestamp"], 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != f["verifyTimestamp"] {
		return bad("timestamp is not the Unix seconds that were signed")
	}
	s.mu.Lock()
	now := s.now()
	var tickets []string
	for t, tk := range s.tickets {
		if now.Before(tk.Expires) && tk.AppID == appID {
			tickets = append(tickets, t)
		}
	}
	s.mu.Unlock()
	for _, t := range tickets {
		want := mp.JSSDKSignature(t, f["verifyNonceStr"], ts, page)
		if subtle.ConstantTimeCompare([]byte(want), []byte(f["verifySignature"])) == 1 {
			return BridgeAnswer{ErrMsg: preVerifyOK}, nil
		}
	}
	if len(tickets) == 0 {
		return bad("no live jsapi_ticket was issued for appId " + appID)
	}
	return bad("signature is not SHA-1 of jsapi_ticket, noncestr, timestamp and url=" + page)
}

// brandPay checks getBrandWCPayRequest's parameters as WeChat does (the
// prepay it names, its appId, signType and paySign), then plays the payer's
// choice through POST /sim/pay.
func (s *Sim) brandPay(ctx context.Context, p map[string]json.RawMessage, choice string) (BridgeAnswer, error) {
	switch choice {
	case "", "ok", "fail", "cancel":
	default:
		return BridgeAnswer{}, errors.New(`choice must be "", "ok", "fail" or "cancel"`)
	}
	f, err := jsStrings(p, "appId", "timeStamp", "nonceStr", "package", "signType", "paySign")
	if err != nil {
		return BridgeAnswer{}, err
	}
	prepayID, sheet, failed := s.checkPaySign(f, "")
	switch {
	case failed != nil:
		return *failed, nil
	case choice == "":
		return BridgeAnswer{Sheet: sheet}, nil
	case choice == "cancel":
		return BridgeAnswer{ErrMsg: payCancel}, nil
	}
	result := ""
	if choice == "fail" {
		result = "fail"
	}
	status, out := s.payAsPayer(ctx, prepayID, result)
	switch {
	case status == http.StatusOK && out["trade_state"] == stateSuccess && choice == "ok":
		return BridgeAnswer{ErrMsg: payOK}, nil
	case status == http.StatusOK && choice == "fail":
		return BridgeAnswer{ErrMsg: payFail, ErrDesc: "the bank refused the payment (" + out["trade_state"] + ")"}, nil
	}
	return BridgeAnswer{ErrMsg: payFail, ErrDesc: cmp.Or(out["error"], out["trade_state"])}, nil
}

// checkPaySign verifies the six pay parameters against the prepay order they
// name: the prepay_id known, not paid, closed nor expired; appId one of the
// order's (appid / sp_appid, sub_appid: else "商户传入的appid参数不正确") and
// the app the sheet opens in (running, when the caller knows it); the
// order's payer an openid of that app; signType the order's (v2: MD5 or
// HMAC-SHA256, as the unified order; v3: RSA); paySign right, with the keys
// of the merchant that signs the order (a sub-merchant's provider) over that
// appId (else "支付验证签名失败", err_code 2). It returns the prepay_id and
// the sheet, or WeChat's failure.
func (s *Sim) checkPaySign(f map[string]string, running string) (string, *BridgeSheet, *BridgeAnswer) {
	fail := func(msg, why string) (string, *BridgeSheet, *BridgeAnswer) {
		return "", nil, &BridgeAnswer{ErrMsg: msg, ErrDesc: why}
	}
	prepayID, ok := strings.CutPrefix(f["package"], "prepay_id=")
	if !ok || prepayID == "" {
		return fail(payFail, `package must be "prepay_id=<prepay_id>"`)
	}
	s.mu.Lock()
	o, known := s.byPrepay[prepayID]
	var snap order
	if known {
		snap = *o
	}
	now := s.now()
	s.mu.Unlock()
	switch {
	case !known:
		return fail(payFail, "unknown prepay_id")
	case snap.State == stateClosed:
		return fail(payFail, "订单已关闭 (the order is closed)")
	case snap.State == stateSuccess || snap.State == stateRefund:
		return fail(payFail, "该订单已支付 (the order is paid)")
	case now.Sub(snap.CreatedAt) > PrepayLifetime:
		return fail(payFail, "prepay_id expired (2 hours)")
	case f["appId"] != snap.AppID && (snap.SubAppID == "" || f["appId"] != snap.SubAppID):
		return fail(payBadAppID, "商户传入的appid参数不正确: appId is not the appid (sp_appid or sub_appid) of the prepay order")
	case running != "" && f["appId"] != running:
		return fail(payBadSign, "支付验证签名失败: the sheet opens in app "+running+", appId names "+f["appId"])
	case snap.TradeType == "JSAPI" && f["appId"] != snap.payerAppID():
		return fail(payBadSign, "支付验证签名失败: the payer's openid belongs to app "+snap.payerAppID()+", not to appId "+f["appId"])
	}
	m := s.dir.parties[snap.MchID].m
	if snap.API == "v3" {
		if f["signType"] != "RSA" {
			return fail(payBadSign, fmt.Sprintf("signType %q: an API v3 order is signed RSA", f["signType"]))
		}
		msg := f["appId"] + "\n" + f["timeStamp"] + "\n" + f["nonceStr"] + "\n" + f["package"] + "\n"
		sig, err := base64.StdEncoding.DecodeString(f["paySign"])
		sum := sha256.Sum256([]byte(msg))
		if err != nil || rsa.VerifyPKCS1v15(&m.PrivateKey.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			return fail(payBadSign, "paySign is not the merchant's RSA signature of appId, timeStamp, nonceStr and package")
		}
	} else {
		want := cmp.Or(snap.SignType, string(v2.SignMD5))
		if f["signType"] != want {
			return fail(payBadSign, fmt.Sprintf("signType %q: this order's unified order was signed %s", f["signType"], want))
		}
		signed := map[string]string{"appId": f["appId"], "timeStamp": f["timeStamp"], "nonceStr": f["nonceStr"],
			"package": f["package"], "signType": f["signType"]}
		exp := v2.Sign(signed, string(m.APIKey), v2.SignType(want))
		if subtle.ConstantTimeCompare([]byte(strings.ToUpper(f["paySign"])), []byte(exp)) != 1 {
			return fail(payBadSign, "paySign is not the "+want+" signature of appId, nonceStr, package, signType and timeStamp")
		}
	}
	return prepayID, &BridgeSheet{AmountFen: snap.TotalFen, MchID: snap.MchID, SubMchID: snap.SubMchID}, nil
}

// payAsPayer pays (or, with result "fail", fails) a prepay through the very
// handler of POST /sim/pay, so the bridge's payment is the payer's payment,
// notification and all.
func (s *Sim) payAsPayer(ctx context.Context, prepayID, result string) (int, map[string]string) {
	body, _ := json.Marshal(map[string]string{"prepay_id": prepayID, "result": result})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/sim/pay", bytes.NewReader(body))
	if err != nil {
		return http.StatusInternalServerError, map[string]string{"error": err.Error()}
	}
	rec := &capturedAnswer{header: http.Header{}, status: http.StatusOK}
	s.handlePay(rec, req)
	out := map[string]string{}
	_ = json.Unmarshal(rec.body.Bytes(), &out)
	return rec.status, out
}

// capturedAnswer is a ResponseWriter that keeps the answer, for a handler
// called in-process.
type capturedAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *capturedAnswer) Header() http.Header         { return c.header }
func (c *capturedAnswer) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *capturedAnswer) WriteHeader(status int)      { c.status = status }

// jsStrings reads the named parameters as JavaScript's String(v) writes
// them: the JS-SDK sends strings, but a page that calls the bridge itself
// may pass a number (a timestamp). A missing parameter is "".
func jsStrings(p map[string]json.RawMessage, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		raw, ok := p[n]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			out[n] = s
			continue
		}
		var num json.Number
		if err := json.Unmarshal(raw, &num); err == nil {
			out[n] = num.String()
			continue
		}
		return nil, fmt.Errorf("params.%s must be a string or a number", n)
	}
	return out, nil
}

// browserCORS lets a page of any origin call a simulator endpoint that plays
// WeChat's client (the bridge, wx.login, the payer) and read its answer.
func browserCORS(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h(w, r)
	}
}

// handlePreflight answers a browser's CORS preflight for those endpoints:
// POST with a JSON body, no credentials.
func (s *Sim) handlePreflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
