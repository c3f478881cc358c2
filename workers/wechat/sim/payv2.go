package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v2"
)

// v2Answer is what a v2 handler decides: fields to return, or a business error.
type v2Answer struct {
	fields  map[string]string
	errCode string
	errDes  string
}

func v2Fail(code, des string) v2Answer { return v2Answer{errCode: code, errDes: des} }

// caller is who makes a pay call, as WeChat resolves it: the merchant whose
// keys sign it and, in partner mode, the sub-merchant it is for.
type caller struct {
	p   *party
	sub *wechat.Merchant // nil for a direct merchant's call
}

// subMchID is the call's sub_mchid ("" for a direct merchant).
func (c caller) subMchID() string {
	if c.sub == nil {
		return ""
	}
	return c.sub.SubMchID
}

// v2 wraps a pay API v2 handler with WeChat's transport rules: XML in,
// mch_id and sign checked against that merchant's API key (SIGNERROR
// answered unsigned, as WeChat does), appid bound to mch_id, the partner
// fields (sub_mch_id, sub_appid) as the merchant's kind wants them, the
// merchant's client certificate on /secapi/, injected SYSTEMERROR, and an
// XML answer signed with the merchant's key.
func (s *Sim) v2(h func(r *http.Request, p map[string]string, c caller) v2Answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fail := func(msg string) {
			s.log.Info("v2 refused", "path", r.URL.Path, "reason", msg)
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			_, _ = w.Write(v2.EncodeXML(map[string]string{"return_code": "FAIL", "return_msg": msg}))
		}
		body, err := readBody(r)
		if err != nil || len(body) == 0 {
			fail("POST_DATA_EMPTY")
			return
		}
		p, err := v2.ParseXML(body)
		if err != nil {
			fail("XML_FORMAT_ERROR")
			return
		}
		c, msg := s.v2Caller(p)
		if msg != "" {
			fail(msg)
			return
		}
		m := c.p.m
		signType := v2.SignMD5
		if p["sign_type"] == string(v2.SignHMACSHA256) {
			signType = v2.SignHMACSHA256
		}
		var a v2Answer
		if strings.HasPrefix(r.URL.Path, "/secapi/") && !merchantCertificate(r, m) {
			fail("证书验证失败 (no valid merchant client certificate)")
			return
		}
		if s.systemError() {
			a = v2Fail("SYSTEMERROR", "系统错误 (injected)")
		} else {
			a = h(r, p, c)
		}
		out := map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "appid": p["appid"], "mch_id": m.MchID,
			"nonce_str": v2.NonceStr(), "result_code": "SUCCESS"}
		if c.sub != nil {
			out["sub_mch_id"] = c.sub.SubMchID
			if p["sub_appid"] != "" {
				out["sub_appid"] = p["sub_appid"]
			}
		}
		if signType != v2.SignMD5 {
			out["sign_type"] = string(signType)
		}
		if a.errCode != "" {
			out["result_code"], out["err_code"], out["err_code_des"] = "FAIL", a.errCode, a.errDes
		}
		for k, v := range a.fields {
			out[k] = v
		}
		out["sign"] = v2.Sign(out, string(m.APIKey), signType)
		s.log.Info("v2 call", "path", r.URL.Path, "mch_id", m.MchID, "sub_mch_id", c.subMchID(), "out_trade_no", p["out_trade_no"],
			"result", out["result_code"], "err_code", a.errCode)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(v2.EncodeXML(out))
	}
}

// v2Caller resolves a v2 call's merchant as WeChat does: its mch_id, its
// sign (that merchant's API key), its appid bound to the mch_id, then the
// partner fields; a return_msg when refused.
func (s *Sim) v2Caller(p map[string]string) (caller, string) {
	pt := s.dir.parties[p["mch_id"]]
	switch {
	case pt == nil:
		return caller{}, "appid和mch_id不匹配"
	case v2.Verify(p, string(pt.m.APIKey)) != nil:
		return caller{}, "签名错误"
	case !pt.owns(p["appid"]):
		return caller{}, "appid和mch_id不匹配"
	}
	c := caller{p: pt}
	sub, subApp := p["sub_mch_id"], p["sub_appid"]
	switch {
	case pt.provider() && sub == "":
		return caller{}, "受理机构必须传入sub_mch_id"
	case !pt.provider() && (sub != "" || subApp != ""):
		return caller{}, "普通商户不允许传sub_mch_id"
	case pt.provider():
		if c.sub = pt.subs[sub]; c.sub == nil {
			return caller{}, "受理关系不存在"
		}
		if subApp != "" && !subOwns(c.sub, subApp) {
			return caller{}, "sub_mch_id与sub_appid不匹配"
		}
	}
	return c, ""
}

// merchantCertificate reports whether the TLS peer showed m's client
// certificate, verified against the simulator's CA.
func merchantCertificate(r *http.Request, m *wechat.Merchant) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	want, ok := new(big.Int).SetString(m.SerialNo, 16)
	return ok && r.TLS.PeerCertificates[0].SerialNumber.Cmp(want) == 0
}

// checkNotifyURL applies WeChat's rule (absolute, no query) and the
// simulator's mode: https only when Strict, else also http on loopback.
func (s *Sim) checkNotifyURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("notify_url %q is not an absolute URL", raw)
	}
	if u.RawQuery != "" {
		return fmt.Errorf("notify_url must not carry a query string")
	}
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" && !s.cfg.Strict {
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("notify_url must be https (http only on loopback outside strict mode)")
}

// errOpenIDApp is WeChat's refusal of an openid of another app.
const errOpenIDApp = "appid和openid不匹配"

// checkOpenID refuses an openid this simulator issued for another app than
// appid, and, in Strict mode, one it never issued; the caller holds s.mu.
func (s *Sim) checkOpenID(openid, appid string) error {
	if openid == "" {
		return fmt.Errorf("openid is required for JSAPI")
	}
	issuer, issued := s.openids[openid]
	if issued && issuer != appid || !issued && s.cfg.Strict {
		return errors.New(errOpenIDApp)
	}
	return nil
}

// payerAppID is the app of an order's payer: sub_appid for a sub_openid,
// else the order's appid (sp_appid).
func (o *order) payerAppID() string {
	if o.SubOpenID != "" {
		return o.SubAppID
	}
	return o.AppID
}

// payerOpenID is the order's payer's openid in payerAppID.
func (o *order) payerOpenID() string { return cmp.Or(o.SubOpenID, o.OpenID) }

// spOpenID is a partner order's payer's openid under sp_appid, which WeChat
// reports even when the payer paid with sub_openid; the caller holds s.mu.
func (s *Sim) spOpenID(o *order) string {
	if o.OpenID != "" || o.SubOpenID == "" {
		return o.OpenID
	}
	return openIDFor(cmp.Or(s.users[o.SubOpenID], "openid:"+o.SubOpenID), o.AppID)
}

// findOrder finds the caller's order: its mchid's, and for a partner call
// its sub-merchant's; the caller holds s.mu.
func (s *Sim) findOrder(c caller, outTradeNo string) (*order, bool) {
	o, ok := s.orders[okey(c.p.m.MchID, outTradeNo)]
	if !ok || o.SubMchID != c.subMchID() {
		return nil, false
	}
	return o, true
}

// newOrder registers a prepay or answers the same prepay_id for the same
// parameters; the caller holds s.mu. It returns a WeChat error code or "".
func (s *Sim) newOrder(o *order) (*order, string, string) {
	if prev, ok := s.orders[okey(o.MchID, o.OutTradeNo)]; ok {
		switch {
		case prev.Fingerprint != o.Fingerprint:
			return nil, "OUT_TRADE_NO_USED", "商户订单号重复"
		case prev.State == stateClosed:
			return nil, "ORDERCLOSED", "订单已关闭"
		case prev.State == stateSuccess || prev.State == stateRefund:
			return nil, "ORDERPAID", "该订单已支付"
		}
		return prev, "", ""
	}
	if o.TotalFen <= 0 {
		return nil, "PARAM_ERROR", "total_fee must be a positive integer"
	}
	if err := s.checkNotifyURL(o.NotifyURL); err != nil {
		return nil, "PARAM_ERROR", err.Error()
	}
	if o.TradeType == "JSAPI" {
		if err := s.checkOpenID(o.payerOpenID(), o.payerAppID()); err != nil {
			return nil, "PARAM_ERROR", err.Error()
		}
	}
	o.State, o.CreatedAt = stateNotPay, s.now()
	o.PrepayID = fmt.Sprintf("wx%s%010d", o.CreatedAt.Format("20060102150405"), s.nextID())
	k := okey(o.MchID, o.OutTradeNo)
	s.orders[k] = o
	s.byPrepay[o.PrepayID] = o
	s.keepOrder(o)
	s.remember(k, "")
	return o, "", ""
}

func (s *Sim) v2UnifiedOrder(_ *http.Request, p map[string]string, c caller) v2Answer {
	fen, err := strconv.ParseInt(p["total_fee"], 10, 64)
	if err != nil || p["body"] == "" || p["out_trade_no"] == "" || p["spbill_create_ip"] == "" || p["trade_type"] == "" {
		return v2Fail("PARAM_ERROR", "body, out_trade_no, total_fee, spbill_create_ip and trade_type are required")
	}
	if c.sub == nil && p["sub_openid"] != "" {
		return v2Fail("PARAM_ERROR", "普通商户不允许传sub_openid")
	}
	if c.sub != nil && p["trade_type"] == "JSAPI" {
		switch {
		case p["openid"] != "" && p["sub_openid"] != "":
			return v2Fail("PARAM_ERROR", "openid和sub_openid只能传其一")
		case p["sub_openid"] != "" && p["sub_appid"] == "":
			return v2Fail("PARAM_ERROR", "sub_appid and sub_openid not match (sub_appid is required with sub_openid)")
		}
	}
	o := &order{API: "v2", AppID: p["appid"], MchID: p["mch_id"], SubMchID: c.subMchID(), SubAppID: p["sub_appid"],
		OutTradeNo: p["out_trade_no"], TotalFen: fen, OpenID: p["openid"], SubOpenID: p["sub_openid"], NotifyURL: p["notify_url"],
		SignType: p["sign_type"], TradeType: p["trade_type"], Description: p["body"],
		Fingerprint: strings.Join([]string{"v2", p["body"], p["total_fee"], p["openid"], p["trade_type"], c.subMchID(), p["sub_appid"],
			p["sub_openid"]}, "|")}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, code, des := s.newOrder(o)
	if code != "" {
		return v2Fail(code, des)
	}
	f := map[string]string{"trade_type": o.TradeType, "prepay_id": o.PrepayID}
	switch o.TradeType {
	case "NATIVE":
		f["code_url"] = "weixin://wxpay/bizpayurl?pr=" + o.PrepayID[2:12]
	case "MWEB":
		f["mweb_url"] = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=" + o.PrepayID
	}
	return v2Answer{fields: f}
}

func (s *Sim) v2OrderQuery(_ *http.Request, p map[string]string, c caller) v2Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.findOrder(c, p["out_trade_no"])
	if !ok {
		return v2Fail("ORDERNOTEXIST", "此交易订单号不存在")
	}
	f := map[string]string{"out_trade_no": o.OutTradeNo, "trade_state": o.State, "trade_state_desc": o.State,
		"total_fee": strconv.FormatInt(o.TotalFen, 10), "trade_type": o.TradeType}
	if o.TransactionID != "" {
		f["transaction_id"], f["openid"], f["time_end"] = o.TransactionID, s.spOpenID(o), v2.FormatTime(o.PaidAt)
		f["cash_fee"], f["bank_type"], f["fee_type"], f["is_subscribe"] = f["total_fee"], "OTHERS", "CNY", "N"
		if o.SubOpenID != "" {
			f["sub_openid"], f["sub_is_subscribe"] = o.SubOpenID, "N"
		}
	}
	return v2Answer{fields: f}
}

func (s *Sim) v2CloseOrder(_ *http.Request, p map[string]string, c caller) v2Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	code, des := s.closeOrder(c, p["out_trade_no"])
	if code != "" {
		return v2Fail(code, des)
	}
	return v2Answer{}
}

// closeOrder closes an unpaid order; the caller holds s.mu.
func (s *Sim) closeOrder(c caller, outTradeNo string) (string, string) {
	o, ok := s.findOrder(c, outTradeNo)
	switch {
	case !ok:
		return "ORDERNOTEXIST", "订单不存在"
	case o.State == stateSuccess || o.State == stateRefund:
		return "ORDERPAID", "订单已支付"
	case o.State == stateClosed:
		return "ORDERCLOSED", "订单已关闭"
	}
	o.State = stateClosed
	s.keepOrder(o)
	return "", ""
}

// newRefund accepts a refund, idempotent by out_refund_no; the caller holds s.mu.
func (s *Sim) newRefund(c caller, rf *refund, totalFen int64) (*refund, string, string) {
	rk := okey(c.p.m.MchID, rf.OutRefundNo)
	if prev, ok := s.refunds[rk]; ok {
		if prev.RefundFen != rf.RefundFen || prev.OutTradeNo != rf.OutTradeNo || prev.SubMchID != c.subMchID() {
			return nil, "INVALID_REQUEST", "out_refund_no already used for another refund"
		}
		return prev, "", ""
	}
	o, ok := s.findOrder(c, rf.OutTradeNo)
	switch {
	case !ok || o.State != stateSuccess && o.State != stateRefund:
		return nil, "ORDERNOTEXIST", "订单不存在或未支付"
	case totalFen != o.TotalFen:
		return nil, "PARAM_ERROR", "total_fee does not match the order"
	case rf.RefundFen <= 0:
		return nil, "PARAM_ERROR", "refund_fee must be positive"
	case o.RefundedFen+rf.RefundFen > o.TotalFen:
		return nil, "NOTENOUGH", "refund exceeds what remains of the payment"
	}
	if code, des := s.refundRules(o, rf.OutRefundNo); code != "" {
		s.log.Info("refund refused", "out_refund_no", rf.OutRefundNo, "code", code)
		return nil, code, des
	}
	if rf.NotifyURL != "" {
		if err := s.checkNotifyURL(rf.NotifyURL); err != nil {
			return nil, "PARAM_ERROR", err.Error()
		}
	}
	o.RefundedFen += rf.RefundFen
	o.State = stateRefund
	o.refunding++
	rf.MchID, rf.SubMchID, rf.AppID, rf.SubAppID = o.MchID, o.SubMchID, o.AppID, o.SubAppID
	rf.Status, rf.CreatedAt = "PROCESSING", s.now()
	rf.RefundID = fmt.Sprintf("5030%016d", s.nextID())
	s.refunds[rk] = rf
	s.keepOrder(o)
	s.keepRefund(rf)
	s.remember("", rk)
	s.later(s.cfg.RefundDelay, func(context.Context) { s.settleRefund(rk) })
	return rf, "", ""
}

func (s *Sim) v2Refund(_ *http.Request, p map[string]string, c caller) v2Answer {
	total, err1 := strconv.ParseInt(p["total_fee"], 10, 64)
	fee, err2 := strconv.ParseInt(p["refund_fee"], 10, 64)
	if err1 != nil || err2 != nil || p["out_refund_no"] == "" || p["out_trade_no"] == "" {
		return v2Fail("PARAM_ERROR", "out_trade_no, out_refund_no, total_fee and refund_fee are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, code, des := s.newRefund(c, &refund{API: "v2", OutRefundNo: p["out_refund_no"], OutTradeNo: p["out_trade_no"],
		RefundFen: fee, NotifyURL: p["notify_url"], SignType: p["sign_type"]}, total)
	if code != "" {
		return v2Fail(code, des)
	}
	o := s.orders[okey(rf.MchID, rf.OutTradeNo)]
	return v2Answer{fields: map[string]string{"out_trade_no": o.OutTradeNo, "transaction_id": o.TransactionID,
		"out_refund_no": rf.OutRefundNo, "refund_id": rf.RefundID, "refund_fee": strconv.FormatInt(rf.RefundFen, 10),
		"total_fee": strconv.FormatInt(o.TotalFen, 10), "cash_fee": strconv.FormatInt(o.TotalFen, 10)}}
}

func (s *Sim) v2RefundQuery(_ *http.Request, p map[string]string, c caller) v2Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, ok := s.refunds[okey(c.p.m.MchID, p["out_refund_no"])]
	if !ok || rf.SubMchID != c.subMchID() {
		return v2Fail("REFUNDNOTEXIST", "退款订单查询失败")
	}
	return v2Answer{fields: map[string]string{"out_trade_no": rf.OutTradeNo, "refund_count": "1", "total_refund_count": "1",
		"out_refund_no_0": rf.OutRefundNo, "refund_id_0": rf.RefundID, "refund_fee_0": strconv.FormatInt(rf.RefundFen, 10),
		"refund_status_0": rf.Status}}
}

// beijingTime formats success_time of v2 refund notifications.
func beijingTime(t time.Time) string {
	return t.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05")
}
