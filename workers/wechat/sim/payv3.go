package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// v3Answer is what a v3 handler decides: an HTTP status and a body (nil for 204).
type v3Answer struct {
	status int
	body   any
}

func v3Err(status int, code, msg string) v3Answer {
	return v3Answer{status: status, body: map[string]string{"code": code, "message": msg}}
}

// v3 wraps a pay API v3 handler with WeChat's transport rules: the
// Authorization header verified against the key of the merchant it names
// (401 SIGN_ERROR otherwise), injected SYSTEM_ERROR, and a response signed
// with WeChat Pay's key for that merchant in Wechatpay-* headers.
func (s *Sim) v3(h func(r *http.Request, body []byte, p *party) v3Answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		var a v3Answer
		p, refused := s.v3Signer(r, body)
		if err != nil {
			a = v3Err(http.StatusBadRequest, "PARAM_ERROR", "unreadable body")
		} else if refused != nil {
			a = *refused
		} else if s.systemError() {
			a = v3Err(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 (injected)")
		} else {
			a = h(r, body, p)
		}
		var out []byte
		if a.body != nil {
			out, _ = json.Marshal(a.body)
		}
		hdr, err := v3.SignResponseHeaders(p.wxKey, p.m.WechatPayPublicKeyID, out, s.now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, v := range hdr {
			w.Header()[k] = v
		}
		s.log.Info("v3 call", "method", r.Method, "path", r.URL.Path, "mchid", p.m.MchID, "status", a.status)
		if out != nil {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(out)
	}
}

// v3Signer finds the merchant an Authorization header names and verifies
// the request with its key. A refused call is answered signed with WeChat
// Pay's key for the first merchant, as no merchant is established.
func (s *Sim) v3Signer(r *http.Request, body []byte) (*party, *v3Answer) {
	first := s.dir.parties[s.keys.Merchant.MchID]
	auth, err := v3.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		a := v3Err(http.StatusUnauthorized, "SIGN_ERROR", "Authorization header is malformed")
		return first, &a
	}
	p := s.dir.parties[auth.MchID]
	if p == nil || auth.SerialNo != p.m.SerialNo {
		a := v3Err(http.StatusUnauthorized, "SIGN_ERROR", "商户证书序列号有误: mchid or serial_no does not match a merchant certificate")
		return first, &a
	}
	if err := v3.VerifyRequest(&p.m.PrivateKey.PublicKey, r.Method, r.URL.RequestURI(), body, auth, s.now()); err != nil {
		a := v3Err(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: "+err.Error())
		return p, &a
	}
	return p, nil
}

// Refusals of a merchant's kind on the other kind's APIs (PARTNER.md §7).
var (
	errProviderDirect = v3Err(http.StatusBadRequest, "PARAM_ERROR", "受理机构必须传入sub_mch_id")
	errDirectPartner  = v3Err(http.StatusBadRequest, "PARAM_ERROR", "普通商户不允许传sub_mch_id")
	errHeaderMchID    = v3Err(http.StatusBadRequest, "PARAM_ERROR", "http header中的mchid与post payload中的mchid不匹配")
	errNoRelation     = v3Err(http.StatusForbidden, "NO_AUTH", "受理关系不存在")
	errSubAppID       = v3Err(http.StatusBadRequest, "PARAM_ERROR", "sub_mch_id与sub_appid不匹配")
	errOrderNotExist  = v3Err(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
)

// v2 error codes as v3 names and statuses them.
func v3FromCode(code, des string) v3Answer {
	switch code {
	case "ORDERNOTEXIST":
		return v3Err(http.StatusNotFound, "ORDER_NOT_EXIST", des)
	case "ORDERPAID":
		return v3Err(http.StatusBadRequest, "ORDERPAID", des)
	case "ORDERCLOSED":
		return v3Err(http.StatusBadRequest, "ORDER_CLOSED", des)
	case "OUT_TRADE_NO_USED":
		return v3Err(http.StatusForbidden, "OUT_TRADE_NO_USED", des)
	case "NOTENOUGH":
		return v3Err(http.StatusForbidden, "NOT_ENOUGH", des)
	case "INVALID_REQUEST":
		return v3Err(http.StatusBadRequest, "INVALID_REQUEST", des)
	}
	return v3Err(http.StatusBadRequest, "PARAM_ERROR", des)
}

type v3PrepayBody struct {
	AppID       string    `json:"appid"`
	MchID       string    `json:"mchid"`
	SubMchID    string    `json:"sub_mchid"`
	SubAppID    string    `json:"sub_appid"`
	Description string    `json:"description"`
	OutTradeNo  string    `json:"out_trade_no"`
	NotifyURL   string    `json:"notify_url"`
	Amount      v3.Amount `json:"amount"`
	Payer       *v3.Payer `json:"payer"`
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	return dec.Decode(v)
}

func (s *Sim) v3Prepay(tradeType string) func(*http.Request, []byte, *party) v3Answer {
	return func(_ *http.Request, body []byte, p *party) v3Answer {
		var in v3PrepayBody
		if err := decodeStrict(body, &in); err != nil {
			return v3Err(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON: "+err.Error())
		}
		switch {
		case p.provider():
			return errProviderDirect
		case in.SubMchID != "" || in.SubAppID != "":
			return errDirectPartner
		case in.MchID != p.m.MchID || !p.owns(in.AppID):
			return v3Err(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
		}
		if in.Description == "" || in.OutTradeNo == "" {
			return v3Err(http.StatusBadRequest, "PARAM_ERROR", "description and out_trade_no are required")
		}
		openid := ""
		if in.Payer != nil {
			openid = in.Payer.OpenID
		}
		o := &order{API: "v3", AppID: in.AppID, MchID: in.MchID, OutTradeNo: in.OutTradeNo, TotalFen: in.Amount.Total,
			OpenID: openid, NotifyURL: in.NotifyURL, TradeType: tradeType, Description: in.Description,
			Fingerprint: "v3|" + in.Description + "|" + strconv.FormatInt(in.Amount.Total, 10) + "|" + openid + "|" + tradeType}
		s.mu.Lock()
		defer s.mu.Unlock()
		o, code, des := s.newOrder(o)
		if code != "" {
			return v3FromCode(code, des)
		}
		if tradeType == "NATIVE" {
			return v3Answer{status: http.StatusOK, body: map[string]string{"code_url": "weixin://wxpay/bizpayurl?pr=" + o.PrepayID[2:12]}}
		}
		return v3Answer{status: http.StatusOK, body: map[string]string{"prepay_id": o.PrepayID}}
	}
}

// transaction renders an order as v3 reports it; the caller holds s.mu.
func transaction(o *order) v3.Transaction {
	t := v3.Transaction{AppID: o.AppID, MchID: o.MchID, OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID,
		TradeType: o.TradeType, TradeState: o.State, TradeStateDesc: o.State, Payer: v3.Payer{OpenID: o.OpenID},
		Amount: v3.Amount{Total: o.TotalFen, Currency: "CNY"}}
	if !o.PaidAt.IsZero() {
		t.SuccessTime = o.PaidAt.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
		t.Amount.PayerTotal = o.TotalFen
	}
	return t
}

func (s *Sim) v3Query(r *http.Request, _ []byte, p *party) v3Answer {
	q := r.URL.Query()
	switch {
	case p.provider():
		return errProviderDirect
	case q.Has("sub_mchid"):
		return errDirectPartner
	case q.Get("mchid") == "":
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "mchid is required")
	case q.Get("mchid") != p.m.MchID:
		return errHeaderMchID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var o *order
	if id := r.PathValue("id"); id != "" {
		o = s.orderByTransaction(caller{p: p}, id)
	} else {
		o, _ = s.findOrder(caller{p: p}, r.PathValue("no"))
	}
	if o == nil {
		return errOrderNotExist
	}
	return v3Answer{status: http.StatusOK, body: transaction(o)}
}

// orderByTransaction finds the caller's order by WeChat's transaction_id;
// the caller holds s.mu.
func (s *Sim) orderByTransaction(c caller, id string) *order {
	for _, o := range s.orders {
		if o.TransactionID == id && o.MchID == c.p.m.MchID && o.SubMchID == c.subMchID() {
			return o
		}
	}
	return nil
}

func (s *Sim) v3Close(r *http.Request, body []byte, p *party) v3Answer {
	var in struct {
		MchID    string `json:"mchid"`
		SubMchID string `json:"sub_mchid"`
	}
	err := decodeStrict(body, &in)
	switch {
	case p.provider():
		return errProviderDirect
	case err == nil && in.SubMchID != "":
		return errDirectPartner
	case err != nil || in.MchID == "":
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "mchid is required")
	case in.MchID != p.m.MchID:
		return errHeaderMchID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, des := s.closeOrder(caller{p: p}, r.PathValue("no")); code != "" {
		return v3FromCode(code, des)
	}
	return v3Answer{status: http.StatusNoContent}
}

// v3RefundBody renders a refund as v3 reports it; the caller holds s.mu.
func (s *Sim) v3RefundBody(rf *refund) v3.Refund {
	o := s.orders[okey(rf.MchID, rf.OutTradeNo)]
	return v3.Refund{RefundID: rf.RefundID, OutRefundNo: rf.OutRefundNo, TransactionID: o.TransactionID,
		OutTradeNo: o.OutTradeNo, Status: rf.Status,
		Amount: v3.Amount{Total: o.TotalFen, Refund: rf.RefundFen, PayerTotal: o.TotalFen, PayerRefund: rf.RefundFen, Currency: "CNY"}}
}

func (s *Sim) v3Refund(_ *http.Request, body []byte, p *party) v3Answer {
	var in struct {
		SubMchID    string    `json:"sub_mchid"`
		OutTradeNo  string    `json:"out_trade_no"`
		OutRefundNo string    `json:"out_refund_no"`
		NotifyURL   string    `json:"notify_url"`
		Amount      v3.Amount `json:"amount"`
	}
	if err := decodeStrict(body, &in); err != nil || in.OutTradeNo == "" || in.OutRefundNo == "" {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "out_trade_no, out_refund_no and amount are required")
	}
	c, refused := s.v3SubCaller(p, in.SubMchID)
	if refused != nil {
		return *refused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, code, des := s.newRefund(c, &refund{API: "v3", OutRefundNo: in.OutRefundNo, OutTradeNo: in.OutTradeNo,
		RefundFen: in.Amount.Refund, NotifyURL: in.NotifyURL}, in.Amount.Total)
	if code != "" {
		return s.v3RefundRefusal(in.OutRefundNo, code, des)
	}
	return v3Answer{status: http.StatusOK, body: s.v3RefundBody(rf)}
}

// v3SubCaller resolves the sub_mchid of a call whose path both kinds share
// (refunds): a provider must name one of its sub-merchants, a direct
// merchant none.
func (s *Sim) v3SubCaller(p *party, subMchID string) (caller, *v3Answer) {
	c := caller{p: p}
	switch {
	case p.provider() && subMchID == "":
		return c, &errProviderDirect
	case !p.provider() && subMchID != "":
		return c, &errDirectPartner
	case p.provider():
		if c.sub = p.subs[subMchID]; c.sub == nil {
			return c, &errNoRelation
		}
	}
	return c, nil
}

func (s *Sim) v3RefundQuery(r *http.Request, _ []byte, p *party) v3Answer {
	c, refused := s.v3SubCaller(p, r.URL.Query().Get("sub_mchid"))
	if refused != nil {
		return *refused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, ok := s.refunds[okey(p.m.MchID, r.PathValue("no"))]
	if !ok || rf.SubMchID != c.subMchID() {
		return v3Err(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在")
	}
	return v3Answer{status: http.StatusOK, body: s.v3RefundBody(rf)}
}
