package pay

// RefundState is what WeChat says of a refund, in an answer or a refund
// notification, in either API generation: v2 and v3 spell two of the states
// differently, and callers must not have to know which spoke. The zero value
// is [RefundUnknown], so a state nobody set is never settled.
type RefundState int

// The refund states, with the word for each in v3 and, where it differs, v2.
const (
	// RefundUnknown is any word wxflow does not know for the generation that
	// said it. It is not settled: the refund stays pending, for the
	// reconciler and a person, rather than be called paid back or given up.
	RefundUnknown    RefundState = iota
	RefundSuccess                // SUCCESS: the money is back with the payer
	RefundProcessing             // PROCESSING: accepted, not done yet
	RefundClosed                 // CLOSED (v2 REFUNDCLOSE): given up; no money moved
	RefundAbnormal               // ABNORMAL (v2 CHANGE): the payer's account refused it; a person must act
)

// refundWords is v3's word for each state, indexed by RefundState.
var refundWords = [...]string{
	RefundUnknown:    "UNKNOWN",
	RefundSuccess:    "SUCCESS",
	RefundProcessing: "PROCESSING",
	RefundClosed:     "CLOSED",
	RefundAbnormal:   "ABNORMAL",
}

// refundStates is each generation's refund_status / status words: v2 (its
// refund query's refund_status_$n and its notification's refund_status) and
// v3 (its answers' status and its notification's refund_status).
var refundStates = map[API]map[string]RefundState{
	"v2": {"SUCCESS": RefundSuccess, "PROCESSING": RefundProcessing, "REFUNDCLOSE": RefundClosed, "CHANGE": RefundAbnormal},
	"v3": {"SUCCESS": RefundSuccess, "PROCESSING": RefundProcessing, "CLOSED": RefundClosed, "ABNORMAL": RefundAbnormal},
}

// refundStateOf reads a refund status as the generation api spells it; a
// word of the other generation, or of none, is RefundUnknown.
func refundStateOf(api API, word string) RefundState {
	return refundStates[api][word]
}

// Settled reports whether the refund is over, one way or the other (SUCCESS
// or CLOSED): nothing WeChat says of it later will change it. PROCESSING and
// ABNORMAL may still move, and an unknown word is not trusted to be final.
func (s RefundState) Settled() bool { return s == RefundSuccess || s == RefundClosed }

// String is v3's word, for logs; "UNKNOWN" for a word wxflow does not know
// (the [RefundStatus] keeps that word in RawState).
func (s RefundState) String() string {
	if s < 0 || int(s) >= len(refundWords) {
		return refundWords[RefundUnknown]
	}
	return refundWords[s]
}
