package workers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// CallRecord is one attempt of a worker at an order's step, and what WeChat
// answered: the admin's view of "what did we ask WeChat, and what happened".
// An attempt is recorded when it asked WeChat anything, or produced a
// command, or failed: a query answering "not paid yet" or a refund still
// processing is a record too, though it changes nothing.
type CallRecord struct {
	At       time.Time        `json:"at"`
	Worker   string           `json:"worker"`
	Event    engine.EventType `json:"event"`
	Delivery uint64           `json:"delivery"`
	Took     time.Duration    `json:"took"`
	// Outcome is ok (a result was recorded), unchanged (WeChat answered and
	// nothing is to be recorded yet: not paid, refund processing), retry (a
	// retryable failure), final (the order fails) or dead (dead-lettered).
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	// Asked lists the calls to WeChat the attempt made, in order, each with
	// WeChat's answer in a word; empty for a step that asks WeChat nothing
	// (signing the pay parameters).
	Asked []Asked `json:"asked,omitempty"`
}

// Asked is one call to WeChat and its answer in a word: a trade or refund
// state as WeChat spells it (NOTPAY, PROCESSING, SUCCESS), "ok", or the
// error code of a refusal ("error" when it has none).
type Asked struct {
	API    string `json:"api"`
	Answer string `json:"answer"`
}

// callNotes collects the calls a handler makes during one attempt; the loop
// puts one in the handler's context.
type callNotes struct {
	mu    sync.Mutex
	asked []Asked
}

type callNotesKey struct{}

// withCallNotes gives ctx a fresh list of the attempt's calls.
func withCallNotes(ctx context.Context) (context.Context, *callNotes) {
	n := &callNotes{}
	return context.WithValue(ctx, callNotesKey{}, n), n
}

// list is the calls noted so far.
func (n *callNotes) list() []Asked {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Asked(nil), n.asked...)
}

// noteCall adds to the attempt's record a call to WeChat's api and its
// answer: word when err is nil, else err's code. Handlers call it after each
// call to WeChat; outside the loop (a test calling Handle) it does nothing.
func noteCall(ctx context.Context, api, word string, err error) {
	n, ok := ctx.Value(callNotesKey{}).(*callNotes)
	if !ok {
		return
	}
	if err != nil {
		word = wechat.CodeOf(err)
		if word == "" {
			word = "error"
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.asked = append(n.asked, Asked{API: api, Answer: word})
}

// CallSubject is where an order's call records go: wxflow.calls.<order_id>,
// kept in the CallStream for a week.
func CallSubject(id engine.OrderID) string { return engine.CallSubjectPrefix + string(id) }

// recordCall publishes a call record without waiting: a lost record loses
// no money, and the loop must not slow down for it.
func recordCall(js jetstream.JetStream, id engine.OrderID, r CallRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	_, _ = js.PublishAsync(CallSubject(id), b)
}

// outcomeOf is a record's outcome, code and error message.
func outcomeOf(cmd *engine.Command, err error, dead bool) (string, string, string) {
	switch {
	case err == nil && cmd == nil:
		return "unchanged", "", ""
	case err == nil:
		return "ok", "", ""
	case dead:
		return "dead", wechat.CodeOf(err), err.Error()
	case wechat.IsRetryable(err):
		return "retry", wechat.CodeOf(err), err.Error()
	}
	return "final", wechat.CodeOf(err), err.Error()
}

// ReadCalls returns an order's call records, oldest first.
func ReadCalls(ctx context.Context, js jetstream.JetStream, id engine.OrderID) ([]CallRecord, error) {
	stream, err := js.Stream(ctx, engine.CallStream)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(CallSubject(id)))
	if err != nil {
		return nil, err
	}
	n := info.State.Subjects[CallSubject(id)]
	if n == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{CallSubject(id)}})
	if err != nil {
		return nil, err
	}
	out := make([]CallRecord, 0, n)
	for range n {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || err != nil {
			return out, err
		}
		var r CallRecord
		if json.Unmarshal(msg.Data(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
