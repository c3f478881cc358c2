package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// IntakeConsumer is the durable consumer of the command stream shared by
// every engine process.
const IntakeConsumer = "engine"

// runIntake consumes wxflow.cmd.> and applies each command. One order's
// commands arrive in publish order and are applied one at a time; the
// engine's answer goes to the command's Wxflow-Reply subject, if any.
func (e *Engine) runIntake(ctx context.Context) error {
	it, err := e.intakeMessages(ctx)
	if err != nil {
		return err // at start: the engine cannot run without its intake
	}
	// Commands of different orders are applied in parallel, one order's in
	// order: each order id always goes to the same shard.
	shards := make([]chan jetstream.Msg, e.cfg.IntakeShards)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan jetstream.Msg, 64)
		wg.Go(func() {
			for msg := range shards[i] {
				// Group commit: what has queued up behind this command is
				// applied in the same transaction.
				batch := []jetstream.Msg{msg}
			more:
				for len(batch) < e.cfg.IntakeBatch {
					select {
					case m, ok := <-shards[i]:
						if !ok {
							break more
						}
						batch = append(batch, m)
					default:
						break more
					}
				}
				e.handleCommands(ctx, batch)
			}
		})
	}
	defer func() {
		for _, ch := range shards {
			close(ch)
		}
		wg.Wait()
	}()
	for {
		e.pumpCommands(ctx, it, shards)
		if ctx.Err() != nil {
			return nil
		}
		// The iterator ended for good (its consumer was deleted, or the
		// server refused the pull): make the consumer again and go on.
		e.log.Warn("intake: command iterator closed; re-creating the consumer")
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if it, err = e.intakeMessages(ctx); err == nil {
				break
			}
			e.log.Warn("intake: consumer", "err", err)
		}
	}
}

// intakeMessages declares the intake's durable consumer and pulls from it.
func (e *Engine) intakeMessages(ctx context.Context) (jetstream.MessagesContext, error) {
	cons, err := e.js.CreateOrUpdateConsumer(ctx, CommandStream, jetstream.ConsumerConfig{
		Durable:       IntakeConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1024,
		FilterSubject: CommandSubjectPrefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("engine: intake consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("engine: intake: %w", err)
	}
	return it, nil
}

// pumpCommands hands the iterator's commands to their shards until ctx
// ends (then it drains) or the iterator closes for good.
func (e *Engine) pumpCommands(ctx context.Context, it jetstream.MessagesContext, shards []chan jetstream.Msg) {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			it.Drain()
		case <-stop:
			it.Stop()
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			e.log.Warn("intake", "err", err)
			continue
		}
		shards[shardOf(msg.Data(), len(shards))] <- msg
	}
}

// shardOf picks a shard by the command's order id, read without decoding
// the whole command; undecodable data goes to shard 0.
func shardOf(data []byte, n int) int {
	var head struct {
		OrderID OrderID `json:"order_id"`
	}
	if n <= 1 || json.Unmarshal(data, &head) != nil {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(head.OrderID))
	return int(h.Sum32() % uint32(n))
}

// handleCommands applies a batch of commands in one transaction and answers
// and acks each; an undecodable one is dropped.
func (e *Engine) handleCommands(ctx context.Context, msgs []jetstream.Msg) {
	cmds := make([]Command, 0, len(msgs))
	kept := msgs[:0:0]
	for _, msg := range msgs {
		var cmd Command
		if err := json.Unmarshal(msg.Data(), &cmd); err != nil {
			e.log.Warn("undecodable command dropped", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			continue
		}
		if !e.admit(ctx, msg, &cmd) {
			continue
		}
		cmds, kept = append(cmds, cmd), append(kept, msg)
	}
	if len(cmds) == 1 {
		res, err := e.Apply(ctx, cmds[0])
		e.answerCommand(ctx, kept[0], cmds[0], res, err)
		return
	}
	results, errs := e.ApplyBatch(ctx, cmds)
	for i := range cmds {
		e.answerCommand(ctx, kept[i], cmds[i], results[i], errs[i])
	}
}

// admit sets the command's origin from the subject it arrived on (NATS
// permissions tie it to the publisher) and refuses a command its origin may
// not send, or whose payload names another verb than its subject. A refused
// command is not recorded, so it cannot take the id of a genuine one; it is
// logged, counted and terminated. A shop's command ids are made its own.
func (e *Engine) admit(ctx context.Context, msg jetstream.Msg, cmd *Command) bool {
	cmd.Origin = originOfSubject(msg.Subject())
	ok, why := cmd.Verb != "" && msg.Subject() == cmd.Subject(), "the subject names another verb than the command"
	if ok {
		ok, why = mayPublish(cmd.Origin, *cmd)
	}
	if !ok {
		e.log.Warn("command refused: its publisher may not send it", "subject", msg.Subject(), "verb", cmd.Verb,
			"order_id", cmd.OrderID, "command", cmd.ID, "why", why)
		if e.cfg.Observer != nil {
			e.cfg.Observer.Refused(cmd.Verb, CodeForbiddenOrigin)
		}
		e.answerCommand(ctx, msg, *cmd, Result{Code: CodeForbiddenOrigin, Reason: why}, nil)
		return false
	}
	if shop, ok := cmd.Origin.Shop(); ok {
		cmd.ID = string(cmd.Origin) + "/" + cmd.ID
		cmd.Actor = "shop:" + shop
		if cmd.Create != nil {
			cmd.Create.Shop = shop // the subject names the shop, whatever the payload says
		}
	}
	return true
}

// answerCommand replies to and acks a command applied (or naks it, to be
// tried again, when the store failed).
func (e *Engine) answerCommand(ctx context.Context, msg jetstream.Msg, cmd Command, res Result, err error) {
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrStoreFull) {
			level = slog.LevelError // an operator must free space; commands wait in the stream meanwhile
		}
		e.log.Log(ctx, level, "apply failed, will retry", "command", cmd.ID, "order_id", cmd.OrderID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	// The command's attributes are formatted only for a line that is
	// written: a handler's With formats them at once, for every command.
	logged := func() *slog.Logger {
		return e.log.With("order_id", cmd.OrderID, "command", cmd.ID, "verb", cmd.Verb, "trace_id", cmd.TraceID)
	}
	switch {
	case !res.Applied:
		logged().Info("refused", "code", res.Code, "reason", res.Reason)
	case e.log.Enabled(ctx, slog.LevelDebug):
		logged().Debug("applied", "state", res.Order.State)
	}
	if reply := msg.Headers().Get(ReplyHeader); reply != "" {
		if !replyAllowed(cmd.Origin, reply) {
			logged().Warn("answer refused: the reply subject is not the publisher's inbox", "origin", cmd.Origin, "reply", reply)
		} else if b, err := json.Marshal(res); err == nil {
			_ = e.nc.Publish(reply, b)
		}
	}
	if err := msg.Ack(); err != nil {
		logged().Warn("ack", "err", err)
	}
}
