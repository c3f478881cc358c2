package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// Service-provider mode (服务商, PARTNER.md): a provider calls the partner
// APIs for its sub-merchants with its own keys; WeChat checks the request in
// the order of PARTNER.md §7 and answers with the partner shapes.

// partnerPrepayBody is POST /v3/pay/partner/transactions/jsapi's body.
type partnerPrepayBody struct {
	SpAppID     string `json:"sp_appid"`
	SpMchID     string `json:"sp_mchid"`
	SubAppID    string `json:"sub_appid"`
	SubMchID    string `json:"sub_mchid"`
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire"`
	Attach      string `json:"attach"`
	NotifyURL   string `json:"notify_url"`
	Amount      *struct {
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	Payer *struct {
		SpOpenID  string `json:"sp_openid"`
		SubOpenID string `json:"sub_openid"`
	} `json:"payer"`
}

// partnerPrepaySchema is every field the partner prepay documents (nil: a
// leaf or an object not checked further); anything else is refused.
var partnerPrepaySchema = map[string]any{
	"sp_appid": nil, "sp_mchid": nil, "sub_appid": nil, "sub_mchid": nil, "description": nil, "out_trade_no": nil,
	"time_expire": nil, "attach": nil, "notify_url": nil, "goods_tag": nil, "limit_pay": nil, "support_fapiao": nil,
	"amount": map[string]any{"total": nil, "currency": nil},
	"payer":  map[string]any{"sp_openid": nil, "sub_openid": nil},
	"detail": nil, "scene_info": nil,
	"settle_info": map[string]any{"profit_sharing": nil},
}

// unknownField is the JSON path of the first field of v not in schema
// ("" when none), as WeChat names it in detail.value: /body/payer/openid.
func unknownField(v map[string]any, schema map[string]any, at string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sub, known := schema[k]
		if !known {
			return at + "/" + k
		}
		if subSchema, ok := sub.(map[string]any); ok {
			if obj, ok := v[k].(map[string]any); ok {
				if p := unknownField(obj, subSchema, at+"/"+k); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// required is WeChat's refusal of a missing required field.
func required(path, name string) v3Answer {
	return v3Answer{status: http.StatusBadRequest, body: map[string]any{"code": "PARAM_ERROR",
		"message": "输入源“" + path + "”映射到字段“" + name + "”必填性规则校验失败，此字段为必填项",
		"detail":  map[string]any{"location": "body", "value": []string{path}}}}
}

// v3PartnerPrepay answers POST /v3/pay/partner/transactions/jsapi.
func (s *Sim) v3PartnerPrepay(_ *http.Request, body []byte, p *party) v3Answer {
	// Schema: JSON, no undocumented field, the required ones, one payer.
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON: "+err.Error())
	}
	if path := unknownField(raw, partnerPrepaySchema, "/body"); path != "" {
		return v3Answer{status: http.StatusBadRequest, body: map[string]any{"code": "PARAM_ERROR",
			"message": "请求中含有未在API文档中定义的参数", "detail": map[string]any{"location": "body", "value": []string{path}}}}
	}
	var in partnerPrepayBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "body does not match the schema: "+err.Error())
	}
	for _, f := range []struct{ v, path, name string }{
		{in.SpAppID, "/body/sp_appid", "服务商应用ID"}, {in.SpMchID, "/body/sp_mchid", "服务商户号"},
		{in.SubMchID, "/body/sub_mchid", "子商户号"}, {in.Description, "/body/description", "商品描述"},
		{in.OutTradeNo, "/body/out_trade_no", "商户订单号"}, {in.NotifyURL, "/body/notify_url", "通知地址"},
	} {
		if f.v == "" {
			return required(f.path, f.name)
		}
	}
	if in.Amount == nil || in.Amount.Total == nil {
		return required("/body/amount/total", "总金额")
	}
	if in.Payer == nil || in.Payer.SpOpenID == "" && in.Payer.SubOpenID == "" {
		return required("/body/payer", "支付者")
	}
	switch {
	case in.Payer.SpOpenID != "" && in.Payer.SpOpenID == in.Payer.SubOpenID:
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", errOpenIDApp)
	case in.Payer.SpOpenID != "" && in.Payer.SubOpenID != "":
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "sp_openid与sub_openid只能二选一")
	case in.Payer.SubOpenID != "" && in.SubAppID == "":
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "若sub_openid有传的情况下，sub_appid必填")
	}
	// Identities, in WeChat's order.
	switch {
	case in.SpMchID != p.m.MchID:
		return errHeaderMchID
	case !p.provider():
		return errDirectPartner
	case !p.owns(in.SpAppID):
		return v3Err(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配,请检查后再试")
	}
	sub := p.subs[in.SubMchID]
	switch {
	case sub == nil:
		return errNoRelation
	case in.SubAppID != "" && !subOwns(sub, in.SubAppID):
		return errSubAppID
	}
	total := *in.Amount.Total
	o := &order{API: "v3", AppID: in.SpAppID, MchID: in.SpMchID, SubMchID: in.SubMchID, SubAppID: in.SubAppID,
		OutTradeNo: in.OutTradeNo, TotalFen: total, OpenID: in.Payer.SpOpenID, SubOpenID: in.Payer.SubOpenID,
		NotifyURL: in.NotifyURL, TradeType: "JSAPI", Description: in.Description,
		Fingerprint: strings.Join([]string{"v3p", in.Description, strconv.FormatInt(total, 10), in.SubMchID, in.SubAppID,
			in.Payer.SpOpenID, in.Payer.SubOpenID}, "|")}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, code, des := s.newOrder(o)
	if code != "" {
		return v3FromCode(code, des)
	}
	return v3Answer{status: http.StatusOK, body: map[string]string{"prepay_id": o.PrepayID}}
}

// v3PartnerCaller checks a partner call's sp_mchid and sub_mchid.
func (s *Sim) v3PartnerCaller(p *party, spMchID, subMchID string) (caller, *v3Answer) {
	c := caller{p: p}
	var a v3Answer
	switch {
	case spMchID == "":
		a = required("/body/sp_mchid", "服务商户号")
	case subMchID == "":
		a = required("/body/sub_mchid", "子商户号")
	case spMchID != p.m.MchID:
		a = errHeaderMchID
	case !p.provider():
		a = errDirectPartner
	default:
		if c.sub = p.subs[subMchID]; c.sub == nil {
			a = errNoRelation
		} else {
			return c, nil
		}
	}
	return c, &a
}

// v3PartnerQuery answers GET /v3/pay/partner/transactions/{out-trade-no/{no},id/{id}}.
func (s *Sim) v3PartnerQuery(r *http.Request, _ []byte, p *party) v3Answer {
	q := r.URL.Query()
	c, refused := s.v3PartnerCaller(p, q.Get("sp_mchid"), q.Get("sub_mchid"))
	if refused != nil {
		return *refused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var o *order
	if id := r.PathValue("id"); id != "" {
		o = s.orderByTransaction(c, id)
	} else {
		o, _ = s.findOrder(c, r.PathValue("no"))
	}
	if o == nil {
		return errOrderNotExist
	}
	return v3Answer{status: http.StatusOK, body: s.partnerTransaction(o)}
}

// v3PartnerClose answers POST /v3/pay/partner/transactions/out-trade-no/{no}/close.
func (s *Sim) v3PartnerClose(r *http.Request, body []byte, p *party) v3Answer {
	var in struct {
		SpMchID  string `json:"sp_mchid"`
		SubMchID string `json:"sub_mchid"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "请求中含有未在API文档中定义的参数: "+err.Error())
	}
	c, refused := s.v3PartnerCaller(p, in.SpMchID, in.SubMchID)
	if refused != nil {
		return *refused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, des := s.closeOrder(c, r.PathValue("no")); code != "" {
		return v3FromCode(code, des)
	}
	return v3Answer{status: http.StatusNoContent}
}

// partnerPayer is a partner transaction's payer.
type partnerPayer struct {
	SpOpenID  string `json:"sp_openid,omitempty"`
	SubOpenID string `json:"sub_openid,omitempty"`
}

// partnerTransactionBody is a partner order as WeChat reports it (query
// answer and decrypted notification, PARTNER.md §3 and §5).
type partnerTransactionBody struct {
	SpAppID        string       `json:"sp_appid"`
	SpMchID        string       `json:"sp_mchid"`
	SubAppID       string       `json:"sub_appid,omitempty"`
	SubMchID       string       `json:"sub_mchid"`
	OutTradeNo     string       `json:"out_trade_no"`
	TransactionID  string       `json:"transaction_id,omitempty"`
	TradeType      string       `json:"trade_type"`
	TradeState     string       `json:"trade_state"`
	TradeStateDesc string       `json:"trade_state_desc"`
	BankType       string       `json:"bank_type,omitempty"`
	Attach         string       `json:"attach"`
	SuccessTime    string       `json:"success_time,omitempty"`
	Payer          partnerPayer `json:"payer"`
	Amount         v3.Amount    `json:"amount"`
}

// partnerTransaction renders a partner order; the caller holds s.mu.
func (s *Sim) partnerTransaction(o *order) partnerTransactionBody {
	t := partnerTransactionBody{SpAppID: o.AppID, SpMchID: o.MchID, SubAppID: o.SubAppID, SubMchID: o.SubMchID,
		OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID, TradeType: o.TradeType, TradeState: o.State,
		TradeStateDesc: o.State, Payer: partnerPayer{SpOpenID: s.spOpenID(o), SubOpenID: o.SubOpenID},
		Amount: v3.Amount{Total: o.TotalFen, Currency: "CNY"}}
	if !o.PaidAt.IsZero() {
		t.SuccessTime = o.PaidAt.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
		t.Amount.PayerTotal, t.BankType = o.TotalFen, "OTHERS"
	}
	return t
}

// partnerRefundNotification is a partner refund notification's resource (§4).
type partnerRefundNotification struct {
	SpMchID             string    `json:"sp_mchid"`
	SubMchID            string    `json:"sub_mchid"`
	OutTradeNo          string    `json:"out_trade_no"`
	TransactionID       string    `json:"transaction_id"`
	OutRefundNo         string    `json:"out_refund_no"`
	RefundID            string    `json:"refund_id"`
	RefundStatus        string    `json:"refund_status"`
	SuccessTime         string    `json:"success_time"`
	UserReceivedAccount string    `json:"user_received_account"`
	Amount              v3.Amount `json:"amount"`
}
