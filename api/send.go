package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/engine"
)

// errNoReply: the command is durably in JetStream but the engine has not
// answered in time; it will be applied.
var errNoReply = errors.New("api: the engine has not answered yet")

// send publishes cmd (Nats-Msg-Id = its id), waits for the PubAck and then,
// when wait is set, for the engine's Result on a private inbox.
func (s *Server) send(ctx context.Context, cmd engine.Command, wait bool) (engine.Result, error) {
	cmd.At = s.cfg.Now().UTC()
	if cmd.TraceID == "" {
		cmd.TraceID = traceID(ctx)
	}
	header := nats.Header{}
	var replies chan *nats.Msg
	if wait {
		inbox := s.cfg.NC.NewRespInbox()
		// A channel of one: SubscribeSync would allocate a 64k-message
		// buffer (512 KiB) per request for the one reply that ever comes.
		replies = make(chan *nats.Msg, 1)
		sub, err := s.cfg.NC.ChanSubscribe(inbox, replies)
		if err != nil {
			return engine.Result{}, err
		}
		defer sub.Unsubscribe()
		header.Set(engine.ReplyHeader, inbox)
	}
	cmd.Origin = engine.OriginAPI // every command of the API goes out under its own name
	ack, err := engine.Publish(ctx, s.cfg.JS, cmd, header)
	if err != nil {
		return engine.Result{}, err
	}
	if !wait {
		return engine.Result{}, nil
	}
	if ack.Duplicate {
		// The same command was published before: its outcome is in the store.
		return s.outcome(ctx, cmd.ID)
	}
	rctx, rcancel := context.WithTimeout(ctx, s.cfg.ReplyTimeout)
	defer rcancel()
	var reply *nats.Msg
	select {
	case reply = <-replies:
	case <-rctx.Done():
		return s.outcome(ctx, cmd.ID)
	}
	var res engine.Result
	if err := json.Unmarshal(reply.Data, &res); err != nil {
		return engine.Result{}, err
	}
	return res, nil
}

// outcome polls the store for a command's result until the reply timeout.
func (s *Server) outcome(ctx context.Context, id string) (engine.Result, error) {
	end := time.Now().Add(s.cfg.ReplyTimeout)
	for {
		res, ok, err := s.cfg.Store.Outcome(ctx, id)
		if err != nil || ok {
			return res, err
		}
		if time.Now().After(end) {
			return engine.Result{}, errNoReply
		}
		select {
		case <-ctx.Done():
			return engine.Result{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
