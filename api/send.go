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
	res, _, err := s.sendSeen(ctx, cmd, wait)
	return res, err
}

// sendSeen is send that also says whether JetStream had the command already
// (a repeat inside its duplicate window): the result is then the first one.
func (s *Server) sendSeen(ctx context.Context, cmd engine.Command, wait bool) (engine.Result, bool, error) {
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
			return engine.Result{}, false, err
		}
		defer sub.Unsubscribe()
		header.Set(engine.ReplyHeader, inbox)
	}
	cmd.Origin = engine.OriginAPI // every command of the API goes out under its own name
	ack, err := engine.Publish(ctx, s.cfg.JS, cmd, header)
	if err != nil {
		return engine.Result{}, false, err
	}
	if !wait {
		return engine.Result{}, false, nil
	}
	if ack.Duplicate {
		// The same command was published before: its outcome is in the store.
		res, err := s.outcome(ctx, cmd.ID)
		return res, true, err
	}
	rctx, rcancel := context.WithTimeout(ctx, s.cfg.ReplyTimeout)
	defer rcancel()
	var reply *nats.Msg
	select {
	case reply = <-replies:
	case <-rctx.Done():
		res, err := s.outcome(ctx, cmd.ID)
		return res, false, err
	}
	var res engine.Result
	if err := json.Unmarshal(reply.Data, &res); err != nil {
		return engine.Result{}, false, err
	}
	return res, false, nil
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
