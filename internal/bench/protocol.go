package bench

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// protocol is the merchant's side of WeChat Pay that no implementation can
// skip, one order at a time, done with wxflow's own primitives
// (workers/wechat/v2 and v3): what the ceiling spends per order besides SQL
// and NATS. No HTTP, no TLS, no engine: the signatures, the verifications,
// the decryptions and the encodings of each message the protocol exchanges.
//
// WeChat's side (its signed answers and notifications) is made beforehand,
// outside the measured time, from the simulator's keys: a pool of
// poolSize of each message, verified in turn (verifying costs the same
// whichever message it is).
type protocol struct {
	m   *wechat.Merchant
	now time.Time // when the pool was signed: verifications check against it

	v3Answers, v3Notifies, v3RefundAnswers, v3RefundNotifies []signedBody
	v2Answers, v2Notifies, v2RefundAnswers, v2RefundNotifies [][]byte
}

// signedBody is a v3 answer or notification with WeChat's headers.
type signedBody struct {
	header http.Header
	body   []byte
}

const poolSize = 16

// protocolCounts are the operations one order of each kind costs: the
// report says what the ceiling did.
type protocolCounts struct {
	RSASigns    int `json:"rsa_signs"`
	RSAVerifies int `json:"rsa_verifies"`
	AESGCMOpens int `json:"aes_gcm_opens"`
	MD5Signs    int `json:"md5_signs"`     // v2 signatures made or checked (MD5, wxflow's sign type)
	AESECBOpens int `json:"aes_ecb_opens"` // v2 refund notifications' req_info
	XMLEncodes  int `json:"xml_encodes"`
	XMLParses   int `json:"xml_parses"`
	JSONEncodes int `json:"json_encodes"`
	JSONDecodes int `json:"json_decodes"`
}

func (c *protocolCounts) add(o protocolCounts, n int) {
	c.RSASigns += n * o.RSASigns
	c.RSAVerifies += n * o.RSAVerifies
	c.AESGCMOpens += n * o.AESGCMOpens
	c.MD5Signs += n * o.MD5Signs
	c.AESECBOpens += n * o.AESECBOpens
	c.XMLEncodes += n * o.XMLEncodes
	c.XMLParses += n * o.XMLParses
	c.JSONEncodes += n * o.JSONEncodes
	c.JSONDecodes += n * o.JSONDecodes
}

// What each step of protocol costs; kept beside the code that does it.
var (
	v3PayCounts    = protocolCounts{RSASigns: 2, RSAVerifies: 2, AESGCMOpens: 1, JSONEncodes: 1, JSONDecodes: 3}
	v3RefundCounts = protocolCounts{RSASigns: 1, RSAVerifies: 2, AESGCMOpens: 1, JSONEncodes: 1, JSONDecodes: 3}
	v2PayCounts    = protocolCounts{MD5Signs: 4, XMLEncodes: 2, XMLParses: 2}
	v2RefundCounts = protocolCounts{MD5Signs: 2, AESECBOpens: 1, XMLEncodes: 1, XMLParses: 3}
)

// newProtocol signs WeChat's side of the pool with wxKey, WeChat's private
// key (the simulator's), for merchant m.
func newProtocol(m *wechat.Merchant, wxKey *rsa.PrivateKey) (*protocol, error) {
	p := &protocol{m: m, now: time.Now()}
	apiKey, v3Key := string(m.APIKey), string(m.APIv3Key)
	sign3 := func(body []byte) (signedBody, error) {
		h, err := v3.SignResponseHeaders(wxKey, m.WechatPayPublicKeyID, body, p.now)
		return signedBody{h, body}, err
	}
	notify3 := func(originalType, event string, plain []byte) (signedBody, error) {
		res, err := v3.EncryptResource(v3Key, v3.NonceStr()[:12], originalType, originalType, plain)
		if err != nil {
			return signedBody{}, err
		}
		body, _ := json.Marshal(v3.Notification{ID: "EV-" + v3.NonceStr()[:16], CreateTime: p.now.Format(time.RFC3339),
			EventType: event, ResourceType: "encrypt-resource", Summary: "bench", Resource: res})
		return sign3(body)
	}
	v2Signed := func(fields map[string]string) []byte {
		out := map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "appid": m.AppID, "mch_id": m.MchID,
			"nonce_str": v2.NonceStr(), "result_code": "SUCCESS"}
		for k, v := range fields {
			out[k] = v
		}
		out["sign"] = v2.Sign(out, apiKey, v2.SignMD5)
		return v2.EncodeXML(out)
	}
	for i := range poolSize {
		no := fmt.Sprintf("BENCH%016d", i)
		txID := fmt.Sprintf("4200%018d", i)
		a, err := sign3([]byte(`{"prepay_id":"wx` + no + `"}`))
		if err != nil {
			return nil, err
		}
		p.v3Answers = append(p.v3Answers, a)
		plain, _ := json.Marshal(v3.Transaction{AppID: m.AppID, MchID: m.MchID, OutTradeNo: no, TransactionID: txID,
			TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", SuccessTime: p.now.Format(time.RFC3339),
			Payer: v3.Payer{OpenID: "oBENCH-" + no}, Amount: v3.Amount{Total: 100, PayerTotal: 100, Currency: "CNY"}})
		n, err := notify3("transaction", "TRANSACTION.SUCCESS", plain)
		if err != nil {
			return nil, err
		}
		p.v3Notifies = append(p.v3Notifies, n)
		rbody, _ := json.Marshal(v3.Refund{RefundID: "5030" + no, OutRefundNo: "R" + no, TransactionID: txID, OutTradeNo: no,
			Status: "PROCESSING", Amount: v3.Amount{Total: 100, Refund: 100, Currency: "CNY"}})
		if a, err = sign3(rbody); err != nil {
			return nil, err
		}
		p.v3RefundAnswers = append(p.v3RefundAnswers, a)
		plain, _ = json.Marshal(v3.RefundNotification{MchID: m.MchID, OutTradeNo: no, TransactionID: txID, OutRefundNo: "R" + no,
			RefundID: "5030" + no, RefundStatus: "SUCCESS", SuccessTime: p.now.Format(time.RFC3339), Amount: v3.Amount{Total: 100, Refund: 100}})
		if n, err = notify3("refund", "REFUND.SUCCESS", plain); err != nil {
			return nil, err
		}
		p.v3RefundNotifies = append(p.v3RefundNotifies, n)

		p.v2Answers = append(p.v2Answers, v2Signed(map[string]string{"prepay_id": "wx" + no, "trade_type": "JSAPI"}))
		p.v2Notifies = append(p.v2Notifies, v2Signed(map[string]string{"openid": "oBENCH-" + no, "is_subscribe": "N",
			"trade_type": "JSAPI", "bank_type": "OTHERS", "total_fee": "100", "fee_type": "CNY", "cash_fee": "100",
			"transaction_id": txID, "out_trade_no": no, "time_end": v2.FormatTime(p.now)}))
		p.v2RefundAnswers = append(p.v2RefundAnswers, v2Signed(map[string]string{"transaction_id": txID, "out_trade_no": no,
			"out_refund_no": "R" + no, "refund_id": "5030" + no, "refund_fee": "100", "total_fee": "100", "cash_fee": "100"}))
		reqInfo, err := v2.EncryptReqInfo(v2.EncodeXMLRoot("root", map[string]string{"out_refund_no": "R" + no, "out_trade_no": no,
			"transaction_id": txID, "refund_id": "5030" + no, "refund_fee": "100", "settlement_refund_fee": "100", "total_fee": "100",
			"settlement_total_fee": "100", "refund_status": "SUCCESS", "success_time": p.now.Format(time.DateTime),
			"refund_recv_accout": "支付用户零钱", "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API"}), apiKey)
		if err != nil {
			return nil, err
		}
		p.v2RefundNotifies = append(p.v2RefundNotifies, v2.EncodeXML(map[string]string{"return_code": "SUCCESS",
			"appid": m.AppID, "mch_id": m.MchID, "nonce_str": v2.NonceStr(), "req_info": reqInfo}))
	}
	return p, nil
}

// notifyURL stands for wxflow's notification URL in the requests.
const notifyURL = "https://shop.example.com/wechat/notify/default/v3/pay"

// v3Pay is one v3 JSAPI payment (v3PayCounts): the prepay request's JSON
// and signature, the answer's verification and JSON, the front end's
// paySign, the notification's verification, JSON, decryption and JSON.
func (p *protocol) v3Pay(i int) error {
	m := p.m
	no := "BENCH" + strconv.Itoa(i)
	body, err := json.Marshal(map[string]any{"appid": m.AppID, "mchid": m.MchID, "description": "bench", "out_trade_no": no,
		"notify_url": notifyURL, "amount": v3.Amount{Total: 100, Currency: "CNY"}, "payer": v3.Payer{OpenID: "oBENCH-" + no}})
	if err != nil {
		return err
	}
	if err := p.v3Request("/v3/pay/transactions/jsapi", body); err != nil {
		return err
	}
	a := p.v3Answers[i%poolSize]
	if err := v3.VerifyResponse(m.WechatPayPublicKey, a.header, a.body, p.now); err != nil {
		return err
	}
	var answer struct {
		PrepayID string `json:"prepay_id"`
	}
	if err := json.Unmarshal(a.body, &answer); err != nil {
		return err
	}
	if _, err := v3.PayParams(m.Signer(), m.AppID, answer.PrepayID, v3.NonceStr(), time.Now().Unix()); err != nil {
		return err
	}
	var t v3.Transaction
	return p.v3Notification(p.v3Notifies[i%poolSize], &t)
}

// v3Refund is one v3 refund (v3RefundCounts): request, answer, notification.
func (p *protocol) v3Refund(i int) error {
	no := "BENCH" + strconv.Itoa(i)
	body, err := json.Marshal(map[string]any{"out_trade_no": no, "out_refund_no": "R" + no, "reason": "bench", "notify_url": notifyURL,
		"amount": v3.Amount{Refund: 100, Total: 100, Currency: "CNY"}})
	if err != nil {
		return err
	}
	if err := p.v3Request("/v3/refund/domestic/refunds", body); err != nil {
		return err
	}
	a := p.v3RefundAnswers[i%poolSize]
	if err := v3.VerifyResponse(p.m.WechatPayPublicKey, a.header, a.body, p.now); err != nil {
		return err
	}
	var r v3.Refund
	if err := json.Unmarshal(a.body, &r); err != nil {
		return err
	}
	var n v3.RefundNotification
	return p.v3Notification(p.v3RefundNotifies[i%poolSize], &n)
}

// v3Request signs a request (its Authorization header).
func (p *protocol) v3Request(path string, body []byte) error {
	nonce, ts := v3.NonceStr(), time.Now().Unix()
	sig, err := v3.SignMessage(p.m.Signer(), v3.RequestMessage(http.MethodPost, path, ts, nonce, body))
	if err != nil {
		return err
	}
	_ = v3.AuthorizationHeader(p.m.MchID, p.m.SerialNo, nonce, ts, sig)
	return nil
}

// v3Notification verifies a notification, decodes its envelope, decrypts
// its resource and decodes that into out.
func (p *protocol) v3Notification(n signedBody, out any) error {
	if err := v3.VerifyResponse(p.m.WechatPayPublicKey, n.header, n.body, p.now); err != nil {
		return err
	}
	var env v3.Notification
	if err := json.Unmarshal(n.body, &env); err != nil {
		return err
	}
	plain, err := v3.DecryptResource(string(p.m.APIv3Key), env.Resource)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, out)
}

// v2Pay is one v2 JSAPI payment (v2PayCounts): the unified order's
// signature and XML, the answer's XML and signature, the front end's
// paySign, the notification's XML and signature, and the reply's XML.
func (p *protocol) v2Pay(i int) error {
	m, key := p.m, string(p.m.APIKey)
	no := "BENCH" + strconv.Itoa(i)
	req := map[string]string{"body": "bench", "out_trade_no": no, "total_fee": "100", "spbill_create_ip": "127.0.0.1",
		"notify_url": notifyURL, "trade_type": "JSAPI", "openid": "oBENCH-" + no, "appid": m.AppID, "mch_id": m.MchID, "nonce_str": v2.NonceStr()}
	req["sign"] = v2.Sign(req, key, v2.SignMD5)
	_ = v2.EncodeXML(req)
	answer, err := p.v2Verified(p.v2Answers[i%poolSize])
	if err != nil {
		return err
	}
	_ = v2.PayParams(m.AppID, answer["prepay_id"], v2.NonceStr(), time.Now().Unix(), key, v2.SignMD5)
	if _, err := p.v2Verified(p.v2Notifies[i%poolSize]); err != nil {
		return err
	}
	_ = v2.NotifyReply(true, "OK")
	return nil
}

// v2Refund is one v2 refund (v2RefundCounts): request, answer, and the
// notification's outer XML, req_info decryption and inner XML.
func (p *protocol) v2Refund(i int) error {
	m, key := p.m, string(p.m.APIKey)
	no := "BENCH" + strconv.Itoa(i)
	req := map[string]string{"out_trade_no": no, "out_refund_no": "R" + no, "total_fee": "100", "refund_fee": "100",
		"refund_desc": "bench", "notify_url": notifyURL, "appid": m.AppID, "mch_id": m.MchID, "nonce_str": v2.NonceStr()}
	req["sign"] = v2.Sign(req, key, v2.SignMD5)
	_ = v2.EncodeXML(req)
	if _, err := p.v2Verified(p.v2RefundAnswers[i%poolSize]); err != nil {
		return err
	}
	outer, err := v2.ParseXML(p.v2RefundNotifies[i%poolSize])
	if err != nil {
		return err
	}
	plain, err := v2.DecryptReqInfo(outer["req_info"], key)
	if err != nil {
		return err
	}
	_, err = v2.ParseXML(plain)
	return err
}

// v2Verified parses a v2 answer or notification and checks its signature.
func (p *protocol) v2Verified(body []byte) (map[string]string, error) {
	f, err := v2.ParseXML(body)
	if err != nil {
		return nil, err
	}
	return f, v2.Verify(f, string(p.m.APIKey))
}
