package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
)

// readNotification reads the raw body once (signatures are over its exact
// bytes) after checking the merchant in the path and the content type. The
// merchant's own clients verify it: a notification signed with another
// merchant's keys, or naming another mchid, sub_mchid or appid, is refused.
func (s *Server) readNotification(r *http.Request, wantType string) (*served, []byte, error) {
	m := s.notifyMerchant(r)
	if m == nil {
		return nil, nil, errors.New("unknown merchant")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "" && !strings.Contains(mt, wantType) {
		return nil, nil, errors.New("wrong content type " + mt)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, errors.New("body too large or unreadable")
	}
	return m, body, nil
}

// Refusal is why a notification was refused, the reason label of
// wxflow_notifications_refused_total: an operator must tell forged
// notifications (signature, foreign) from merely broken ones.
type Refusal int

// The reasons a notification is refused.
const (
	RefusedRequest      Refusal = iota // another merchant's path, wrong content type, too large
	RefusedMalformed                   // not a notification wxflow can read
	RefusedSignature                   // the signature does not verify: forged or tampered
	RefusedStale                       // v3: a timestamp outside the allowed window (a replay)
	RefusedDecrypt                     // v3 resource or v2 req_info that does not decrypt
	RefusedForeign                     // another appid or mch_id
	RefusedUnknownOrder                // genuine, about an out_trade_no wxflow does not know
	refusalKinds
)

// String is the metric label.
func (r Refusal) String() string {
	switch r {
	case RefusedRequest:
		return "request"
	case RefusedMalformed:
		return "malformed"
	case RefusedSignature:
		return "signature"
	case RefusedStale:
		return "stale"
	case RefusedDecrypt:
		return "decrypt"
	case RefusedForeign:
		return "foreign"
	case RefusedUnknownOrder:
		return "unknown_order"
	}
	return "other"
}

// refuse answers a notification that changes nothing, and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, v3style bool, why Refusal, reason string) {
	s.Counters.NotificationsRejected.Add(1)
	s.Counters.NotificationsRefused[why].Add(1)
	s.logRefusal(r, why, reason)
	if v3style {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "FAIL", "message": reason})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(v2.NotifyReply(false, reason))
}

// refuseParsed refuses a notification its parser rejected, for the reason
// the parser's sentinel error gives.
func (s *Server) refuseParsed(w http.ResponseWriter, r *http.Request, v3style bool, err error) {
	why, reason := refusalOf(err)
	s.refuse(w, r, v3style, why, reason)
}

// accept publishes the command and answers WeChat success only after the
// PubAck: a failure to publish asks WeChat to send it again.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, v3style bool, cmd engine.Command) {
	if _, err := s.send(r.Context(), cmd, false); err != nil {
		s.log.Warn("notification not recorded; WeChat will send it again", "err", err)
		if v3style {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"code": "FAIL", "message": "try again"})
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(v2.NotifyReply(false, "try again"))
		return
	}
	s.Counters.NotificationsAccepted.Add(1)
	if v3style {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(v2.NotifyReply(true, "OK"))
}

// orderFor finds the order a genuine notification is about, among its
// merchant's orders only.
func (s *Server) orderFor(ctx context.Context, m *served, outTradeNo string) (engine.Order, error) {
	return s.cfg.Store.OrderByOutTradeNo(ctx, m.Name, outTradeNo)
}

func (s *Server) notifyV2Pay(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.readNotification(r, "xml")
	if err != nil {
		s.refuse(w, r, false, RefusedRequest, err.Error())
		return
	}
	t, err := m.notices.Payment("v2", r.Header, body)
	if err != nil {
		s.refuseParsed(w, r, false, err)
		return
	}
	s.payment(w, r, m, false, t)
}

func (s *Server) notifyV3Pay(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.readNotification(r, "json")
	if err != nil {
		s.refuse(w, r, true, RefusedRequest, err.Error())
		return
	}
	t, err := m.notices.Payment("v3", r.Header, body)
	if err != nil {
		s.refuseParsed(w, r, true, err)
		return
	}
	s.payment(w, r, m, true, t)
}

// payment records a verified payment notification as a notify command. Only
// SUCCESS is a payment here: WeChat notifies a payment when it succeeds, and
// a notification saying anything else (REFUND included) is acknowledged,
// flagged, and left for a query to settle.
func (s *Server) payment(w http.ResponseWriter, r *http.Request, m *served, v3style bool, t pay.Transaction) {
	o, err := s.orderFor(r.Context(), m, t.OutTradeNo)
	if err != nil {
		s.refuse(w, r, v3style, RefusedUnknownOrder, "unknown out_trade_no")
		return
	}
	// The order's merchant, sub-merchant and app, exactly: a genuine
	// notification of another sub-merchant of the same provider verifies
	// with the same keys, and must still pay nothing here.
	if err := pay.Owns(m.Merchant.Merchant, t, s.orderApp(m, o)); err != nil {
		s.log.Warn("notification for another merchant or app", "order_id", o.ID, "err", err)
		s.refuse(w, r, v3style, RefusedForeign, "another appid or merchant")
		return
	}
	if t.State != pay.TradeSuccess {
		// A genuine "not paid" result: nothing to record; acknowledge so WeChat stops.
		s.accept(w, r, v3style, engine.Command{ID: engine.NotFinalCommandID(t.OutTradeNo), Verb: engine.VerbFlag, OrderID: o.ID,
			Actor: "wechat:notify", Flag: &engine.FlagInfo{Reason: engine.FlagPaymentFailed}})
		return
	}
	p := engine.Payment{TransactionID: t.TransactionID, AmountFen: t.AmountFen, OpenID: t.OpenID, PaidAt: t.PaidAt,
		Source: engine.SourceNotification}
	s.accept(w, r, v3style, engine.Command{ID: engine.NotifyCommandID(o.ID, p.TransactionID, p.AmountFen), Verb: engine.VerbNotify,
		OrderID: o.ID, Actor: "wechat:notify", Notify: &p})
}

func (s *Server) notifyV2Refund(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.readNotification(r, "xml")
	if err != nil {
		s.refuse(w, r, false, RefusedRequest, err.Error())
		return
	}
	n, err := m.notices.Refund("v2", r.Header, body)
	if err != nil {
		s.refuseParsed(w, r, false, err)
		return
	}
	s.refundResult(w, r, m, false, n)
}

func (s *Server) notifyV3Refund(w http.ResponseWriter, r *http.Request) {
	m, body, err := s.readNotification(r, "json")
	if err != nil {
		s.refuse(w, r, true, RefusedRequest, err.Error())
		return
	}
	n, err := m.notices.Refund("v3", r.Header, body)
	if err != nil {
		s.refuseParsed(w, r, true, err)
		return
	}
	s.refundResult(w, r, m, true, n)
}

// refundResult records a verified refund notification. One that is not
// settled (ABNORMAL / CHANGE, or a word wxflow does not know) is not final:
// it is acknowledged and flagged for the reconciler and a person.
//
// A v3 notification is authenticated (AEAD_AES_256_GCM under the APIv3 key):
// its word settles the refund. A v2 one is not: its req_info is AES-256-ECB
// without a MAC, so its blocks can be cut, swapped and replayed by whoever
// saw another notification. Its word is only a hint: the order's refund step
// is replayed, the refund worker asks WeChat by out_refund_no, and the query's
// answer settles the refund (or leaves it pending).
func (s *Server) refundResult(w http.ResponseWriter, r *http.Request, m *served, v3style bool, n pay.RefundNotice) {
	o, err := s.orderFor(r.Context(), m, n.OutTradeNo)
	if err != nil {
		s.refuse(w, r, v3style, RefusedUnknownOrder, "unknown out_trade_no")
		return
	}
	if err := pay.OwnsRefund(m.Merchant.Merchant, n); err != nil {
		s.log.Warn("refund notification for another merchant", "order_id", o.ID, "err", err)
		s.refuse(w, r, v3style, RefusedForeign, "another appid or merchant")
		return
	}
	var cmd engine.Command
	switch {
	case n.State.Settled() && !v3style:
		cmd = engine.Command{ID: engine.RefundNoticeCommandID(n.OutRefundNo, n.RawState, time.Now()), Verb: engine.VerbReplay, OrderID: o.ID,
			Actor: "wechat:notify", Reason: "a v2 refund notification says " + n.RawState + " (req_info is not authenticated): ask WeChat"}
	case n.State.Settled():
		// The id ends in WeChat's own word (REFUNDCLOSE from v2, CLOSED from
		// v3), as it always has: the engine remembers command ids, so a
		// notification sent again must meet the id it was first recorded by.
		cmd = engine.Command{ID: engine.RefundResultCommandID(n.OutRefundNo, n.RawState), Verb: engine.VerbRefunded, OrderID: o.ID,
			Actor: "wechat:notify", Refunded: &engine.RefundDone{OutRefundNo: n.OutRefundNo, RefundID: n.RefundID,
				Succeeded: n.State == pay.RefundSuccess, Source: engine.SourceNotification, Code: n.RawState}}
	default:
		cmd = engine.Command{ID: engine.RefundAbnormalCommandID(n.OutRefundNo), Verb: engine.VerbFlag, OrderID: o.ID,
			Actor: "wechat:notify", Flag: &engine.FlagInfo{Reason: engine.FlagRefundAbnormal}}
	}
	s.accept(w, r, v3style, cmd)
}

// refusalOf names a refusal without echoing the message's content.
func refusalOf(err error) (Refusal, string) {
	switch {
	case errors.Is(err, wechat.ErrSignature):
		return RefusedSignature, "signature verification failed"
	case errors.Is(err, wechat.ErrStale):
		return RefusedStale, "timestamp outside the allowed window"
	case errors.Is(err, wechat.ErrDecrypt):
		return RefusedDecrypt, "decryption failed"
	case errors.Is(err, wechat.ErrForeign):
		return RefusedForeign, "another appid or merchant"
	}
	return RefusedMalformed, "malformed notification"
}

// refusalLogBurst and refusalLogEvery bound the warnings about refused
// notifications: a flood of forged ones (anyone can post to the public
// listener) must not flood the logs. Past the bound, refusals are counted
// (wxflow_notifications_refused_total) and the next warning says how many
// went unlogged.
const (
	refusalLogBurst = 20
	refusalLogEvery = time.Second
)

// logRefusal warns of one refused notification, within the bound.
func (s *Server) logRefusal(r *http.Request, why Refusal, reason string) {
	if !s.refusalLog.Allow() {
		s.refusalsUnlogged.Add(1)
		return
	}
	attrs := []any{"path", r.URL.Path, "why", why.String(), "reason", reason, "trace_id", traceID(r.Context())}
	if n := s.refusalsUnlogged.Swap(0); n > 0 {
		attrs = append(attrs, "unlogged_before", n)
	}
	s.log.Warn("notification refused", attrs...)
}
