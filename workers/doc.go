// Package workers runs one worker per WeChat-facing step of an order
// (authorize, prepay, sign, close, refund). Each is a durable pull consumer of
// the event it acts on, shared by every instance of that worker, and returns
// the command that records its result; the one loop in loop.go publishes that
// command, waits for its PubAck and only then acks the event.
//
// Workers know orders (engine) and WeChat (workers/wechat); the engine knows
// neither HTTP nor WeChat.
package workers
