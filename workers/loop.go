package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// LoopConfig tunes the consume loop; zero fields take the defaults.
type LoopConfig struct {
	// MaxDeliver is how many times an event is tried before it is dead-lettered (10).
	MaxDeliver int
	// AckWait is how long a delivery may run before it is redelivered (30 s).
	AckWait time.Duration
	// CallTimeout bounds one Handle call (15 s).
	CallTimeout time.Duration
	// BackoffBase and BackoffMax shape the delay before a retry (200 ms, 30 s).
	BackoffBase, BackoffMax time.Duration
	// Concurrency is how many events one process handles at once (16). A call
	// to WeChat takes tens to hundreds of milliseconds, so a worker that handled
	// one event at a time would queue every order behind the slowest call. One
	// order's events always go to the same lane, so they stay in order.
	Concurrency int
	// Logger receives the loop's logs.
	Logger *slog.Logger
}

func (c *LoopConfig) defaults() {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 200 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
}

// Backoff is the delay before delivery n+1: exponential from base, capped
// at max, with ±25% jitter so a burst of failures does not retry in step.
func Backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

// Run consumes h's events until ctx ends, then drains. Every instance of
// the same worker shares one durable consumer, so they split the work.
func Run(ctx context.Context, js jetstream.JetStream, h Handler, cfg LoopConfig) error {
	cfg.defaults()
	log := cfg.Logger.With("worker", h.Name())
	// Lanes: the consume callback only routes a delivery to its order's lane,
	// and each lane handles its deliveries one by one. A full lane blocks the
	// callback, which stops the pulling: back-pressure, bounded by MaxAckPending.
	lanes := make([]chan jetstream.Msg, cfg.Concurrency)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan jetstream.Msg, 4)
		wg.Go(func() {
			for {
				select {
				case msg := <-lanes[i]:
					handle(ctx, js, h, cfg, log, msg)
				case <-quit:
					return
				}
			}
		})
	}
	consume := func() (jetstream.ConsumeContext, error) {
		cons, err := js.CreateOrUpdateConsumer(ctx, engine.EventStream, jetstream.ConsumerConfig{
			Durable:       h.Name(),
			FilterSubject: engine.EventFilter(h.Event()),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: 256,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return nil, fmt.Errorf("worker %s: consumer: %w", h.Name(), err)
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			select {
			case lanes[laneOf(msg.Subject(), len(lanes))] <- msg:
			case <-quit:
				_ = msg.Nak()
			}
		}, jetstream.PullMaxMessages(64), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				log.Debug("consume", "err", err)
			}
		}))
		if err != nil {
			return nil, fmt.Errorf("worker %s: consume: %w", h.Name(), err)
		}
		return cc, nil
	}
	cc, err := consume()
	if err != nil {
		close(quit)
		wg.Wait()
		return err // at start: a worker that cannot consume must not look alive
	}
running:
	for {
		select {
		case <-ctx.Done():
			break running
		case <-cc.Closed():
			// Stopped for good while running (its consumer was deleted, or
			// the server refused the pull): make the consumer again.
			log.Warn("consumer closed; re-creating it")
			for {
				select {
				case <-ctx.Done():
					break running
				case <-time.After(time.Second):
				}
				next, err := consume()
				if err != nil {
					log.Warn("consumer", "err", err)
					continue
				}
				cc = next
				break
			}
		}
	}
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(10 * time.Second):
	}
	// Deliveries still queued in a lane are nak'ed at once, so that another
	// instance takes them without waiting for AckWait.
	for _, lane := range lanes {
	drain:
		for {
			select {
			case msg := <-lane:
				_ = msg.Nak()
			default:
				break drain
			}
		}
	}
	close(quit)
	wg.Wait()
	return nil
}

// laneOf picks a lane by the event subject's last token, the order id
// (wxflow.evt.<type>.<order_id>), so one order's events keep their order.
func laneOf(subject string, n int) int {
	if n <= 1 {
		return 0
	}
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		subject = subject[i+1:]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return int(h.Sum32() % uint32(n))
}

// handle runs one delivery: decode, Handle, publish the result, then ack;
// or retry later, fail the order, or dead-letter it.
func handle(ctx context.Context, js jetstream.JetStream, h Handler, cfg LoopConfig, log *slog.Logger, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	var ev engine.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.OrderID == "" {
		deadLetter(ctx, js, h, log, msg, "undecodable event", "")
		return
	}
	// The delivery's attributes are added to the logger only on the paths
	// that log: a handler's With formats them at once, for every delivery.
	logged := func() *slog.Logger {
		return log.With("order_id", ev.OrderID, "event", ev.ID, "trace_id", ev.TraceID, "delivery", meta.NumDelivered)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	cctx, notes := withCallNotes(cctx)
	start := time.Now()
	cmd, err := h.Handle(cctx, ev)
	cancel()
	asked := notes.list()
	if ctx.Err() == nil && (cmd != nil || err != nil || len(asked) > 0) { // nothing done, nothing to record
		dead := err != nil && wechat.IsRetryable(err) && int(meta.NumDelivered) >= cfg.MaxDeliver
		outcome, code, msg := outcomeOf(cmd, err, dead)
		recordCall(js, ev.OrderID, CallRecord{At: start.UTC(), Worker: h.Name(), Event: ev.Type, Delivery: meta.NumDelivered,
			Took: time.Since(start), Outcome: outcome, Code: code, Error: msg, Asked: asked})
	}
	switch {
	case err == nil:
		if cmd != nil {
			if err := publish(ctx, js, h, cmd); err != nil {
				logged().Warn("result not published; will retry", "err", err)
				_ = msg.NakWithDelay(Backoff(int(meta.NumDelivered), cfg.BackoffBase, cfg.BackoffMax))
				return
			}
		}
		_ = msg.Ack()
	case ctx.Err() != nil:
		_ = msg.Nak() // shutting down: let another instance take it
	case wechat.IsRetryable(err) && int(meta.NumDelivered) < cfg.MaxDeliver:
		d := Backoff(int(meta.NumDelivered), cfg.BackoffBase, cfg.BackoffMax)
		logged().Info("retryable failure", "err", err, "retry_in", d)
		_ = msg.NakWithDelay(d)
	case wechat.IsRetryable(err):
		deadLetter(ctx, js, h, logged(), msg, "deliveries used up: "+err.Error(), ev.OrderID)
	default:
		logged().Warn("final failure", "err", err)
		fail := resultCommand(h.Name(), engine.VerbFail, ev)
		fail.Fail = &engine.Failure{Step: h.Name(), Code: wechat.CodeOf(err), Message: err.Error(), State: ev.To}
		if misconfigured(err) {
			fail.Fail.Flag = FlagMerchantMisconfigured
		}
		if perr := publish(ctx, js, h, fail); perr != nil {
			_ = msg.NakWithDelay(Backoff(int(meta.NumDelivered), cfg.BackoffBase, cfg.BackoffMax))
			return
		}
		_ = msg.Ack()
	}
}

// publish sends a command and waits for its PubAck.
func publish(ctx context.Context, js jetstream.JetStream, h Handler, cmd *engine.Command) error {
	c := *cmd
	c.Origin = engine.Origin(h.Name()) // a worker's commands go out under its own name, whatever built them
	_, err := engine.Publish(ctx, js, c, nil)
	return err
}

// deadLetter parks a message on wxflow.dlq.<worker>.<order_id> with the
// reason, flags the order for a person, then terminates the delivery.
func deadLetter(ctx context.Context, js jetstream.JetStream, h Handler, log *slog.Logger, msg jetstream.Msg, reason string, order engine.OrderID) {
	token := string(order)
	if token == "" {
		token = "unknown"
	}
	dl := &nats.Msg{Subject: engine.DeadLetterPrefix + h.Name() + "." + token, Data: msg.Data(), Header: nats.Header{}}
	dl.Header.Set("Wxflow-Reason", reason)
	dl.Header.Set("Wxflow-Subject", msg.Subject())
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, dl); err != nil {
		log.Warn("dead-letter not published; will retry", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if order != "" {
		flag := &engine.Command{ID: engine.DeadLetterCommandID(h.Name(), order, time.Now()),
			Verb: engine.VerbFlag, OrderID: order, Actor: "worker:" + h.Name(),
			Flag: &engine.FlagInfo{Reason: "dead_letter:" + h.Name()}, Reason: reason}
		if err := publish(ctx, js, h, flag); err != nil {
			log.Warn("flag not published", "err", err)
		}
	}
	log.Warn("dead-lettered", "reason", reason)
	_ = msg.Term()
}
