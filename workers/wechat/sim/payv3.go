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
// Authorization header verified against the merchant's key (401 SIGN_ERROR
// otherwise), injected SYSTEM_ERROR, and a response signed with WeChat's
// key in Wechatpay-* headers.
func (s *Sim) v3(h func(r *http.Request, body []byte) v3Answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := s.keys.Merchant
		body, err := readBody(r)
		var a v3Answer
		if err != nil {
			a = v3Err(http.StatusBadRequest, "PARAM_ERROR", "unreadable body")
		} else if auth, err := v3.ParseAuthorization(r.Header.Get("Authorization")); err != nil {
			a = v3Err(http.StatusUnauthorized, "SIGN_ERROR", "Authorization header is malformed")
		} else if auth.MchID != m.MchID || auth.SerialNo != m.SerialNo {
			a = v3Err(http.StatusUnauthorized, "SIGN_ERROR", "mchid or serial_no does not match the merchant certificate")
		} else if err := v3.VerifyRequest(&m.PrivateKey.PublicKey, r.Method, r.URL.RequestURI(), body, auth, s.now()); err != nil {
			a = v3Err(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: "+err.Error())
		} else if s.systemError() {
			a = v3Err(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 (injected)")
		} else {
			a = h(r, body)
		}
		var out []byte
		if a.body != nil {
			out, _ = json.Marshal(a.body)
		}
		hdr, err := v3.SignResponseHeaders(s.keys.WechatPayKey, m.WechatPayPublicKeyID, out, s.now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, v := range hdr {
			w.Header()[k] = v
		}
		s.log.Info("v3 call", "method", r.Method, "path", r.URL.Path, "status", a.status)
		if out != nil {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(out)
	}
}

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

func (s *Sim) v3Prepay(tradeType string) func(*http.Request, []byte) v3Answer {
	return func(_ *http.Request, body []byte) v3Answer {
		var in v3PrepayBody
		if err := decodeStrict(body, &in); err != nil {
			return v3Err(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON: "+err.Error())
		}
		m := s.keys.Merchant
		if in.AppID != m.AppID || in.MchID != m.MchID {
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

func (s *Sim) v3Query(r *http.Request, _ []byte) v3Answer {
	if r.URL.Query().Get("mchid") != s.keys.Merchant.MchID {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "mchid is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[r.PathValue("no")]
	if !ok {
		return v3Err(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	}
	return v3Answer{status: http.StatusOK, body: transaction(o)}
}

func (s *Sim) v3Close(r *http.Request, body []byte) v3Answer {
	var in struct {
		MchID string `json:"mchid"`
	}
	if err := decodeStrict(body, &in); err != nil || in.MchID != s.keys.Merchant.MchID {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "mchid is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, des := s.closeOrder(r.PathValue("no")); code != "" {
		return v3FromCode(code, des)
	}
	return v3Answer{status: http.StatusNoContent}
}

// v3Refund renders a refund as v3 reports it; the caller holds s.mu.
func (s *Sim) v3RefundBody(rf *refund) v3.Refund {
	o := s.orders[rf.OutTradeNo]
	return v3.Refund{RefundID: rf.RefundID, OutRefundNo: rf.OutRefundNo, TransactionID: o.TransactionID,
		OutTradeNo: o.OutTradeNo, Status: rf.Status,
		Amount: v3.Amount{Total: o.TotalFen, Refund: rf.RefundFen, PayerTotal: o.TotalFen, PayerRefund: rf.RefundFen, Currency: "CNY"}}
}

func (s *Sim) v3Refund(_ *http.Request, body []byte) v3Answer {
	var in struct {
		OutTradeNo  string    `json:"out_trade_no"`
		OutRefundNo string    `json:"out_refund_no"`
		NotifyURL   string    `json:"notify_url"`
		Amount      v3.Amount `json:"amount"`
	}
	if err := decodeStrict(body, &in); err != nil || in.OutTradeNo == "" || in.OutRefundNo == "" {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "out_trade_no, out_refund_no and amount are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, code, des := s.newRefund(&refund{API: "v3", OutRefundNo: in.OutRefundNo, OutTradeNo: in.OutTradeNo,
		RefundFen: in.Amount.Refund, NotifyURL: in.NotifyURL}, in.Amount.Total)
	if code != "" {
		return s.v3RefundRefusal(in.OutRefundNo, code, des)
	}
	return v3Answer{status: http.StatusOK, body: s.v3RefundBody(rf)}
}

func (s *Sim) v3RefundQuery(r *http.Request, _ []byte) v3Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, ok := s.refunds[r.PathValue("no")]
	if !ok {
		return v3Err(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在")
	}
	return v3Answer{status: http.StatusOK, body: s.v3RefundBody(rf)}
}
