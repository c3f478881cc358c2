package sim

// Retention: WeChat keeps every order for years, and so does the simulator
// by default. A benchmark of hundreds of thousands of orders must not
// mistake the simulator's growing memory for wxflow's, so Config.Retain
// bounds what it keeps: past the bound, the oldest settled records go.

// remember notes new records in creation order and forgets the oldest
// settled ones once there are a tenth more than Config.Retain; the caller
// holds s.mu.
func (s *Sim) remember(outTradeNo, outRefundNo string) {
	if s.cfg.Retain <= 0 {
		return
	}
	if outTradeNo != "" {
		s.orderLog = append(s.orderLog, outTradeNo)
	}
	if outRefundNo != "" {
		s.refundLog = append(s.refundLog, outRefundNo)
	}
	limit := s.cfg.Retain + s.cfg.Retain/10
	if len(s.orderLog) > limit {
		s.orderLog = forgetOldest(s.orderLog, len(s.orderLog)-s.cfg.Retain, func(k string) bool {
			o, ok := s.orders[k]
			if !ok {
				return true
			}
			// Unpaid orders may still be paid or queried; an order with a
			// refund in progress will be settled.
			if o.State == stateNotPay || o.refunding > 0 {
				return false
			}
			delete(s.orders, k)
			delete(s.byPrepay, o.PrepayID)
			return true
		})
	}
	if len(s.refundLog) > limit {
		s.refundLog = forgetOldest(s.refundLog, len(s.refundLog)-s.cfg.Retain, func(k string) bool {
			if rf, ok := s.refunds[k]; ok && rf.Status == "PROCESSING" {
				return false
			}
			delete(s.refunds, k)
			return true
		})
	}
	if len(s.deliveries) > limit {
		excess := len(s.deliveries) - s.cfg.Retain
		kept := s.deliveries[:0]
		for _, d := range s.deliveries {
			if excess > 0 && (d.Delivered || d.Dropped) {
				excess--
				continue
			}
			kept = append(kept, d)
		}
		clear(s.deliveries[len(kept):])
		s.deliveries = kept
	}
}

// forgetOldest walks keys from the oldest and drops up to n of them for
// which forget says yes; the others keep their place.
func forgetOldest(keys []string, n int, forget func(string) bool) []string {
	kept := keys[:0]
	for _, k := range keys {
		if n > 0 && forget(k) {
			n--
			continue
		}
		kept = append(kept, k)
	}
	clear(keys[len(kept):])
	return kept
}
