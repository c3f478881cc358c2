package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// RetrySchedule is WeChat's documented gap before each re-send of a
// payment or refund notification that was not acknowledged, before scaling.
var RetrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 30 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour,
	6 * time.Hour, 6 * time.Hour,
}

// handlePay plays the payer who confirms in WeChat: body {"prepay_id": "…",
// "result": "fail"?}. A success marks the order paid and sends the payment
// notification to its notify_url. With "params" (the pay sheet's appId,
// timeStamp, nonceStr, package, signType, paySign, as wx.requestPayment or
// WeixinJSBridge get them) and "appid" (the app the sheet opens in: a
// mini-program's wx.requestPayment takes no appId), WeChat's client checks
// them first (checkPaySign) and refuses a sheet it would not open: 400
// {"error", "err_msg", "err_code"}.
func (s *Sim) handlePay(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PrepayID string            `json:"prepay_id"`
		Result   string            `json:"result"`
		AppID    string            `json:"appid"`
		Params   map[string]string `json:"params"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"prepay_id\": \"…\"}"})
		return
	}
	if in.Params != nil {
		f := maps.Clone(in.Params)
		if f["appId"] == "" {
			f["appId"] = in.AppID
		}
		prepayID, _, failed := s.checkPaySign(f, in.AppID)
		if failed == nil && in.PrepayID != "" && in.PrepayID != prepayID {
			failed = &BridgeAnswer{ErrMsg: payFail, ErrDesc: "prepay_id is not the one in package"}
		}
		if failed != nil {
			code := "-1"
			if failed.ErrMsg == payBadSign {
				code = "2"
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": failed.ErrDesc, "err_msg": failed.ErrMsg, "err_code": code})
			return
		}
		in.PrepayID = prepayID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byPrepay[in.PrepayID]
	switch {
	case !ok:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown prepay_id"})
		return
	case o.State == stateClosed:
		writeJSON(w, http.StatusConflict, map[string]string{"error": "order closed: 订单已关闭"})
		return
	case o.State == stateSuccess || o.State == stateRefund:
		writeJSON(w, http.StatusOK, map[string]string{"trade_state": o.State, "transaction_id": o.TransactionID})
		return
	case in.Result == "fail":
		o.State = statePayError
		s.keepOrder(o)
		s.log.Info("payer: payment failed", "out_trade_no", o.OutTradeNo)
		writeJSON(w, http.StatusOK, map[string]string{"trade_state": o.State})
		return
	}
	o.State, o.PaidAt = stateSuccess, s.now()
	o.TransactionID = fmt.Sprintf("4200%s%010d", o.PaidAt.Format("20060102"), s.nextID())
	s.keepOrder(o)
	s.log.Info("payer: paid", "out_trade_no", o.OutTradeNo, "total_fen", o.TotalFen)
	if err := s.queuePaymentNotification(o); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"trade_state": o.State, "transaction_id": o.TransactionID})
}

// queuePaymentNotification builds the notification of a paid order in the
// shape of the API that created it; the caller holds s.mu.
func (s *Sim) queuePaymentNotification(o *order) error {
	m := s.dir.parties[o.MchID].m
	if o.API == "v2" {
		signType := v2.SignMD5
		p := map[string]string{"return_code": "SUCCESS", "appid": o.AppID, "mch_id": o.MchID, "nonce_str": v2.NonceStr(),
			"result_code": "SUCCESS", "openid": s.spOpenID(o), "is_subscribe": "N", "trade_type": o.TradeType, "bank_type": "OTHERS",
			"total_fee": strconv.FormatInt(o.TotalFen, 10), "fee_type": "CNY", "cash_fee": strconv.FormatInt(o.TotalFen, 10),
			"transaction_id": o.TransactionID, "out_trade_no": o.OutTradeNo, "time_end": v2.FormatTime(o.PaidAt)}
		if o.SignType == string(v2.SignHMACSHA256) {
			signType = v2.SignHMACSHA256
			p["sign_type"] = o.SignType
		}
		if o.SubMchID != "" {
			p["sub_mch_id"] = o.SubMchID
			if o.SubAppID != "" {
				p["sub_appid"] = o.SubAppID
			}
			if o.SubOpenID != "" {
				p["sub_openid"], p["sub_is_subscribe"] = o.SubOpenID, "N"
			}
		}
		p["sign"] = v2.Sign(p, string(m.APIKey), signType)
		s.queue("v2-pay", o.MchID, o.NotifyURL, o.OutTradeNo, v2.EncodeXML(p), map[string]string{"Content-Type": "text/xml"})
		return nil
	}
	var plain []byte
	if o.SubMchID != "" {
		plain, _ = json.Marshal(s.partnerTransaction(o))
	} else {
		plain, _ = json.Marshal(transaction(o))
	}
	return s.queueV3("v3-pay", o.MchID, o.NotifyURL, o.OutTradeNo, "TRANSACTION.SUCCESS", "支付成功", "transaction", plain)
}

// queueV3 encrypts a resource into a v3 notification to merchant mchid,
// with its APIv3 key; the caller holds s.mu.
func (s *Sim) queueV3(kind, mchid, url, key, event, summary, originalType string, plain []byte) error {
	res, err := v3.EncryptResource(string(s.dir.parties[mchid].m.APIv3Key), randomAlnum(12), originalType, originalType, plain)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(v3.Notification{ID: fmt.Sprintf("EV-%s-%08d", s.now().Format("20060102"), s.nextID()),
		CreateTime: s.now().Format(time.RFC3339), EventType: event, ResourceType: "encrypt-resource", Summary: summary, Resource: res})
	s.queue(kind, mchid, url, key, body, map[string]string{"Content-Type": "application/json"})
	return nil
}

// SettleRefund settles a refund still PROCESSING now, as WeChat does once
// the payer's bank answers, and sends its notification; false when there is
// no such refund or it was settled already. Tests use it with a RefundDelay
// too long to pass, to tell a refund WeChat settled from one a notification
// only claims is.
// A number several merchants used settles the first merchant's refund.
func (s *Sim) SettleRefund(outRefundNo string) bool {
	s.mu.Lock()
	key := okey(s.keys.Merchant.MchID, outRefundNo)
	if _, ok := s.refunds[key]; !ok {
		for k, rf := range s.refunds {
			if rf.OutRefundNo == outRefundNo {
				key = k
				break
			}
		}
	}
	s.mu.Unlock()
	return s.settleRefund(key)
}

// settleRefund moves a refund (by okey) to SUCCESS and notifies, if it has
// a notify URL.
func (s *Sim) settleRefund(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[key]
	if rf == nil || rf.Status != "PROCESSING" {
		return false
	}
	rf.Status, rf.SettledAt = "SUCCESS", s.now()
	s.keepRefund(rf)
	o := s.orders[okey(rf.MchID, rf.OutTradeNo)]
	o.refunding--
	s.log.Info("refund settled", "out_refund_no", rf.OutRefundNo, "mchid", rf.MchID)
	if rf.NotifyURL == "" {
		return true
	}
	m := s.dir.parties[rf.MchID].m
	if rf.API == "v2" {
		plain := v2.EncodeXMLRoot("root", map[string]string{"out_refund_no": rf.OutRefundNo, "out_trade_no": o.OutTradeNo,
			"transaction_id": o.TransactionID, "refund_id": rf.RefundID, "refund_fee": strconv.FormatInt(rf.RefundFen, 10),
			"settlement_refund_fee": strconv.FormatInt(rf.RefundFen, 10), "total_fee": strconv.FormatInt(o.TotalFen, 10),
			"settlement_total_fee": strconv.FormatInt(o.TotalFen, 10), "refund_status": "SUCCESS",
			"success_time": beijingTime(s.now()), "refund_recv_accout": "支付用户零钱",
			"refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API"})
		reqInfo, err := v2.EncryptReqInfo(plain, string(m.APIKey))
		if err != nil {
			return true
		}
		outer := map[string]string{"return_code": "SUCCESS", "appid": o.AppID, "mch_id": o.MchID,
			"nonce_str": v2.NonceStr(), "req_info": reqInfo}
		if o.SubMchID != "" {
			outer["sub_mch_id"] = o.SubMchID
			if o.SubAppID != "" {
				outer["sub_appid"] = o.SubAppID
			}
		}
		s.queue("v2-refund", o.MchID, rf.NotifyURL, rf.OutRefundNo, v2.EncodeXML(outer), map[string]string{"Content-Type": "text/xml"})
		return true
	}
	amount := v3.Amount{Total: o.TotalFen, Refund: rf.RefundFen, PayerTotal: o.TotalFen, PayerRefund: rf.RefundFen}
	var plain []byte
	if o.SubMchID != "" {
		plain, _ = json.Marshal(partnerRefundNotification{SpMchID: o.MchID, SubMchID: o.SubMchID, OutTradeNo: o.OutTradeNo,
			TransactionID: o.TransactionID, OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID, RefundStatus: "SUCCESS",
			SuccessTime: s.now().Format(time.RFC3339), UserReceivedAccount: "支付用户零钱", Amount: amount})
	} else {
		plain, _ = json.Marshal(v3.RefundNotification{MchID: o.MchID, OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID,
			OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID, RefundStatus: "SUCCESS",
			SuccessTime: s.now().Format(time.RFC3339), Amount: amount})
	}
	_ = s.queueV3("v3-refund", o.MchID, rf.NotifyURL, rf.OutRefundNo, "REFUND.SUCCESS", "退款成功", "refund", plain)
	return true
}

// queue records a notification and starts its delivery, applying the
// notification faults; the caller holds s.mu.
func (s *Sim) queue(kind, mchid, url, key string, body []byte, header map[string]string) {
	d := &delivery{ID: strconv.Itoa(s.nextID()), Kind: kind, URL: url, Key: key, MchID: mchid, body: body, header: header}
	s.deliveries = append(s.deliveries, d)
	s.remember("", "")
	f := s.faults
	if s.dice.hit(f.DropNotifyRate) {
		d.Dropped = true
		s.injected["notify_dropped"]++
		s.log.Info("fault: notification dropped", "kind", kind, "key", key)
		return
	}
	var delay time.Duration
	if s.dice.hit(f.ReorderNotifyRate) {
		delay = s.dice.upTo(max(f.ReorderDelay, time.Second))
		s.injected["notify_reordered"]++
	}
	copies := 1
	if f.DuplicateNotify {
		copies = 2
		s.injected["notify_duplicated"]++
	}
	for range copies {
		s.work <- func(ctx context.Context) { s.deliver(ctx, d, delay) }
	}
}

// deliver sends one notification on WeChat's retry schedule until the
// receiver acknowledges it: v2 by the exact SUCCESS XML, v3 by HTTP 2xx.
func (s *Sim) deliver(ctx context.Context, d *delivery, delay time.Duration) {
	wait := delay
	for attempt := 0; ; attempt++ {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		s.mu.Lock()
		done, body := d.Delivered, d.body
		s.mu.Unlock()
		if done {
			return
		}
		err := s.send(ctx, d, body)
		s.mu.Lock()
		d.Attempts++
		if err == nil {
			// Delivered: the body is not needed any more (a long run keeps only the record).
			d.Delivered, d.LastError, d.body = true, "", nil
		} else {
			d.LastError = err.Error()
		}
		s.mu.Unlock()
		if err == nil {
			s.log.Info("notification delivered", "kind", d.Kind, "key", d.Key, "attempt", attempt+1)
			return
		}
		s.log.Info("notification not acknowledged", "kind", d.Kind, "key", d.Key, "attempt", attempt+1, "err", err)
		if attempt >= len(RetrySchedule) {
			return
		}
		wait = s.scaled(RetrySchedule[attempt])
	}
}

// send makes one delivery attempt and judges the answer as WeChat does.
func (s *Sim) send(ctx context.Context, d *delivery, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range d.header {
		req.Header.Set(k, v)
	}
	if d.Kind == "v3-pay" || d.Kind == "v3-refund" {
		p := s.dir.parties[d.MchID] // WeChat Pay's key for the merchant notified
		hdr, err := v3.SignResponseHeaders(p.wxKey, p.m.WechatPayPublicKeyID, body, s.now())
		if err != nil {
			return err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
	}
	resp, err := s.cfg.NotifyClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if d.Kind == "v3-pay" || d.Kind == "v3-refund" {
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	p, err := v2.ParseXML(reply)
	if resp.StatusCode != http.StatusOK || err != nil || p["return_code"] != "SUCCESS" {
		return fmt.Errorf("HTTP %d, reply %q", resp.StatusCode, bytes.TrimSpace(reply))
	}
	return nil
}
