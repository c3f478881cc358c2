package pay

// TradeState is what WeChat says of a payment, in an order query's answer or
// a payment notification, in either API generation. It is a closed set of
// values rather than WeChat's word so that a caller decides with names the
// compiler checks: a misspelt "SUCESS" compiles and silently never matches.
// The zero value is [TradeUnknown], so a state nobody set is never paid.
type TradeState int

// The trade states; each names the trade_state it stands for, the same word
// in v2 and v3.
const (
	// TradeUnknown is any word wxflow does not know. It is neither paid nor
	// closed: the caller leaves the order as it is and asks again later,
	// rather than record money it cannot prove was taken.
	TradeUnknown    TradeState = iota
	TradeSuccess               // SUCCESS: paid
	TradeRefunded              // REFUND: paid, then refunded in part or whole
	TradeNotPaid               // NOTPAY: not paid yet
	TradeClosed                // CLOSED: closed before it was paid
	TradeRevoked               // REVOKED: cancelled (payment code orders)
	TradeUserPaying            // USERPAYING: the payer is entering a password
	TradePayError              // PAYERROR: the payment failed (the bank refused it)
)

// tradeWords is WeChat's word for each state, indexed by TradeState.
var tradeWords = [...]string{
	TradeUnknown:    "UNKNOWN",
	TradeSuccess:    "SUCCESS",
	TradeRefunded:   "REFUND",
	TradeNotPaid:    "NOTPAY",
	TradeClosed:     "CLOSED",
	TradeRevoked:    "REVOKED",
	TradeUserPaying: "USERPAYING",
	TradePayError:   "PAYERROR",
}

// tradeStateOf reads a trade_state of v2 or v3 (they spell it alike); a word
// not in tradeWords is TradeUnknown.
func tradeStateOf(word string) TradeState {
	for s := TradeUnknown + 1; int(s) < len(tradeWords); s++ {
		if tradeWords[s] == word {
			return s
		}
	}
	return TradeUnknown
}

// Paid reports whether the payer's money was taken: SUCCESS, and REFUND too,
// since a refunded payment was a payment first and its order must be
// recorded paid before any refund of it makes sense.
func (s TradeState) Paid() bool { return s == TradeSuccess || s == TradeRefunded }

// Closed reports whether WeChat will take no payment for the order any more
// (CLOSED or REVOKED), so wxflow may call it closed too.
func (s TradeState) Closed() bool { return s == TradeClosed || s == TradeRevoked }

// String is WeChat's word, for logs; "UNKNOWN" for a word wxflow does not
// know (the [Transaction] keeps that word in RawState).
func (s TradeState) String() string {
	if s < 0 || int(s) >= len(tradeWords) {
		return tradeWords[TradeUnknown]
	}
	return tradeWords[s]
}
