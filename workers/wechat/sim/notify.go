package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
// notification to its notify_url.
func (s *Sim) handlePay(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PrepayID string `json:"prepay_id"`
		Result   string `json:"result"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"prepay_id\": \"…\"}"})
		return
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
	m := s.keys.Merchant
	if o.API == "v2" {
		signType := v2.SignMD5
		p := map[string]string{"return_code": "SUCCESS", "appid": o.AppID, "mch_id": o.MchID, "nonce_str": v2.NonceStr(),
			"result_code": "SUCCESS", "openid": o.OpenID, "is_subscribe": "N", "trade_type": o.TradeType, "bank_type": "OTHERS",
			"total_fee": strconv.FormatInt(o.TotalFen, 10), "fee_type": "CNY", "cash_fee": strconv.FormatInt(o.TotalFen, 10),
			"transaction_id": o.TransactionID, "out_trade_no": o.OutTradeNo, "time_end": v2.FormatTime(o.PaidAt)}
		if o.SignType == string(v2.SignHMACSHA256) {
			signType = v2.SignHMACSHA256
			p["sign_type"] = o.SignType
		}
		p["sign"] = v2.Sign(p, string(m.APIKey), signType)
		s.queue("v2-pay", o.NotifyURL, o.OutTradeNo, v2.EncodeXML(p), map[string]string{"Content-Type": "text/xml"})
		return nil
	}
	plain, _ := json.Marshal(transaction(o))
	return s.queueV3("v3-pay", o.NotifyURL, o.OutTradeNo, "TRANSACTION.SUCCESS", "支付成功", "transaction", plain)
}

// queueV3 encrypts a resource into a v3 notification; the caller holds s.mu.
func (s *Sim) queueV3(kind, url, key, event, summary, originalType string, plain []byte) error {
	res, err := v3.EncryptResource(string(s.keys.Merchant.APIv3Key), randomAlnum(12), originalType, originalType, plain)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(v3.Notification{ID: fmt.Sprintf("EV-%s-%08d", s.now().Format("20060102"), s.nextID()),
		CreateTime: s.now().Format(time.RFC3339), EventType: event, ResourceType: "encrypt-resource", Summary: summary, Resource: res})
	s.queue(kind, url, key, body, map[string]string{"Content-Type": "application/json"})
	return nil
}

// SettleRefund settles a refund still PROCESSING now, as WeChat does once
// the payer's bank answers, and sends its notification; false when there is
// no such refund or it was settled already. Tests use it with a RefundDelay
// too long to pass, to tell a refund WeChat settled from one a notification
// only claims is.
func (s *Sim) SettleRefund(outRefundNo string) bool { return s.settleRefund(outRefundNo) }

// settleRefund moves a refund to SUCCESS and notifies, if it has a notify URL.
func (s *Sim) settleRefund(outRefundNo string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[outRefundNo]
	if rf == nil || rf.Status != "PROCESSING" {
		return false
	}
	rf.Status, rf.SettledAt = "SUCCESS", s.now()
	s.keepRefund(rf)
	o := s.orders[rf.OutTradeNo]
	o.refunding--
	s.log.Info("refund settled", "out_refund_no", rf.OutRefundNo)
	if rf.NotifyURL == "" {
		return true
	}
	m := s.keys.Merchant
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
		body := v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": o.AppID, "mch_id": o.MchID,
			"nonce_str": v2.NonceStr(), "req_info": reqInfo})
		s.queue("v2-refund", rf.NotifyURL, rf.OutRefundNo, body, map[string]string{"Content-Type": "text/xml"})
		return true
	}
	plain, _ := json.Marshal(v3.RefundNotification{MchID: o.MchID, OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID,
		OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID, RefundStatus: "SUCCESS",
		SuccessTime: s.now().Format(time.RFC3339), Amount: v3.Amount{Total: o.TotalFen, Refund: rf.RefundFen,
			PayerTotal: o.TotalFen, PayerRefund: rf.RefundFen}})
	_ = s.queueV3("v3-refund", rf.NotifyURL, rf.OutRefundNo, "REFUND.SUCCESS", "退款成功", "refund", plain)
	return true
}

// queue records a notification and starts its delivery, applying the
// notification faults; the caller holds s.mu.
func (s *Sim) queue(kind, url, key string, body []byte, header map[string]string) {
	d := &delivery{ID: strconv.Itoa(s.nextID()), Kind: kind, URL: url, Key: key, body: body, header: header}
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
		hdr, err := v3.SignResponseHeaders(s.keys.WechatPayKey, s.keys.Merchant.WechatPayPublicKeyID, body, s.now())
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
