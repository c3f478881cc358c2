package sim

import (
	"net/http"
	"time"
)

// WeChat's rules on the refunds of one order, beyond the amounts: at most
// 50 refunds of an order (at most 50 partial refunds), and a minute between
// two of them (同一笔订单多次退款需相隔1分钟), on the simulator's time scale.
const (
	maxRefundsPerOrder = 50
	refundGap          = time.Minute
)

// The codes the simulator answers a refund that breaks one of those rules
// with. Neither is in our reference of WeChat's answers: a refund too soon is
// refused with FREQUENCY_LIMITED (v2 err_code; v3 HTTP 429), the code WeChat
// uses for a refund rate limit, which callers retry; the 51st refund with
// the generic business refusals, v2 ERROR and v3 INVALID_REQUEST (HTTP 400),
// which are final.
const (
	codeRefundTooSoon   = "FREQUENCY_LIMITED"
	codeTooManyRefunds  = "ERROR"
	messageRefundSoon   = "同一笔订单多次退款需相隔1分钟"
	messageTooManyTimes = "同一笔订单最多退款50次"
)

// refundRules refuses a new refund of order o that breaks WeChat's rules on
// an order's refunds, or that a test told the simulator to refuse
// (RefuseRefund); "" when it may go. The caller holds s.mu.
func (s *Sim) refundRules(o *order, outRefundNo string) (code, des string) {
	if r, ok := s.refundRefusals[outRefundNo]; ok {
		return r[0], r[1]
	}
	n, last := 0, time.Time{}
	for _, rf := range s.refunds {
		if rf.OutTradeNo == o.OutTradeNo && rf.MchID == o.MchID {
			n++
			if rf.CreatedAt.After(last) {
				last = rf.CreatedAt
			}
		}
	}
	switch {
	case n >= maxRefundsPerOrder:
		return codeTooManyRefunds, messageTooManyTimes
	case n > 0 && s.now().Sub(last) < s.scaled(refundGap):
		return codeRefundTooSoon, messageRefundSoon
	}
	return "", ""
}

// RefuseRefund makes WeChat refuse the refund with this out_refund_no, when
// it is asked for, with code and message, as it refuses a refund for good
// (USER_ACCOUNT_ABNORMAL: the payer's account is closed; TRADE_OVERDUE: the
// payment is older than a year …) and tests need a refund that fails. v2
// answers them as err_code and err_code_des; v3 as HTTP 403 and its code.
// Refunds asked before are not changed.
func (s *Sim) RefuseRefund(outRefundNo, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refundRefusals == nil {
		s.refundRefusals = map[string][2]string{}
	}
	s.refundRefusals[outRefundNo] = [2]string{code, message}
}

// v3RefundRefusal is v3's answer to a refund newRefund refused with a v2
// code: the rules' codes and a test's refusal as WeChat answers them, the
// others as every v3 call does. The caller holds s.mu.
func (s *Sim) v3RefundRefusal(outRefundNo, code, des string) v3Answer {
	if r, ok := s.refundRefusals[outRefundNo]; ok && r[0] == code {
		return v3Err(http.StatusForbidden, code, des)
	}
	switch code {
	case codeRefundTooSoon:
		return v3Err(http.StatusTooManyRequests, code, des)
	case codeTooManyRefunds:
		return v3Err(http.StatusBadRequest, "INVALID_REQUEST", des)
	case "ORDERNOTEXIST":
		return v3Err(http.StatusNotFound, "RESOURCE_NOT_EXISTS", des)
	}
	return v3FromCode(code, des)
}
