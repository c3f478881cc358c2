package workers

import (
	"context"

	"github.com/wxflow/wxflow/engine"
)

// Handler is one worker: it acts on one event type and returns the command
// that records the result (nil when there is nothing to record). It never
// publishes or acks: the loop does, once.
type Handler interface {
	// Name is the durable consumer's name: renaming it replays the stream.
	Name() string
	// Event is the event type the worker consumes, for every order.
	Event() engine.EventType
	// Handle does the step for one event. A retryable error (wechat.IsRetryable)
	// is redelivered later with backoff; any other error fails the order.
	Handle(ctx context.Context, ev engine.Event) (*engine.Command, error)
}

// resultCommand builds a handler's command with a deterministic id, so that a
// redelivered event re-publishes the same command id and JetStream and the
// engine drop the copy.
func resultCommand(worker string, verb engine.Verb, ev engine.Event) *engine.Command {
	return &engine.Command{ID: engine.StepCommandID(verb, ev.ID), Verb: verb, OrderID: ev.OrderID,
		Actor: "worker:" + worker, TraceID: ev.TraceID}
}
