package workers

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// CallRecord is one attempt of a worker at an order's step, and what WeChat
// answered: the admin's view of "what did we ask WeChat, and what happened".
type CallRecord struct {
	At       time.Time        `json:"at"`
	Worker   string           `json:"worker"`
	Event    engine.EventType `json:"event"`
	Delivery uint64           `json:"delivery"`
	Took     time.Duration    `json:"took"`
	// Outcome is ok, retry (a retryable failure), final (the order fails) or dead (dead-lettered).
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
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

func outcomeOf(err error, dead bool) (string, string, string) {
	switch {
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
