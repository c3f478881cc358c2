package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams have size limits (StreamsConfig.MaxBytes, MaxMsgs); a full one
// refuses commands or drops its oldest messages. This file measures how full
// each is, for the wxflow_stream_fill_ratio metric and for the engine's
// warning before one fills.

// Streams lists wxflow's streams, in the order Provision declares them.
var Streams = []string{CommandStream, EventStream, DeadStream, CallStream}

// StreamFillWarn is the share of a stream's limit past which the engine
// warns: early enough for an operator to raise the limit or find the
// consumer that stopped.
const StreamFillWarn = 0.8

// StreamFill is how full one stream is.
type StreamFill struct {
	Stream   string
	Bytes    uint64
	Msgs     uint64
	MaxBytes int64 // the stream's limits as NATS holds them; ≤ 0: none
	MaxMsgs  int64
	// Ratio is the fuller of bytes and messages against their limits (0 when
	// the stream has none): 1 is full.
	Ratio float64
}

// StreamFills measures each of wxflow's streams; a stream NATS cannot
// describe is an error, the others are still measured.
func StreamFills(ctx context.Context, js jetstream.JetStream) ([]StreamFill, error) {
	var out []StreamFill
	var firstErr error
	for _, name := range Streams {
		s, err := js.Stream(ctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("engine: stream %s: %w", name, err)
			}
			continue
		}
		f := StreamFill{Stream: name, Bytes: info.State.Bytes, Msgs: info.State.Msgs,
			MaxBytes: info.Config.MaxBytes, MaxMsgs: info.Config.MaxMsgs}
		if f.MaxBytes > 0 {
			f.Ratio = float64(f.Bytes) / float64(f.MaxBytes)
		}
		if f.MaxMsgs > 0 {
			f.Ratio = max(f.Ratio, float64(f.Msgs)/float64(f.MaxMsgs))
		}
		out = append(out, f)
	}
	return out, firstErr
}

// runStreamWatch checks the streams' fill every StreamCheckInterval.
func (e *Engine) runStreamWatch(ctx context.Context) error {
	t := time.NewTicker(e.cfg.StreamCheckInterval)
	defer t.Stop()
	for {
		if _, err := e.CheckStreams(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("stream fill", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckStreams measures the streams and warns, once each time, when one
// passes StreamFillWarn and when one is full; it says so when one falls
// back below. A full command stream refuses new commands (their senders
// retry); a full event, dead-letter or call stream drops its oldest.
func (e *Engine) CheckStreams(ctx context.Context) ([]StreamFill, error) {
	fills, err := StreamFills(ctx, e.js)
	e.fillMu.Lock()
	defer e.fillMu.Unlock()
	for _, f := range fills {
		level := 0
		switch {
		case f.Ratio >= 1:
			level = 2
		case f.Ratio >= StreamFillWarn:
			level = 1
		}
		prev := e.fillLevel[f.Stream]
		e.fillLevel[f.Stream] = level
		attrs := []any{"stream", f.Stream, "fill", fmt.Sprintf("%.0f%%", 100*f.Ratio), "bytes", f.Bytes, "max_bytes", f.MaxBytes,
			"msgs", f.Msgs, "max_msgs", f.MaxMsgs}
		switch {
		case level > prev && level == 2:
			e.log.Warn("stream full: "+fullMeans(f.Stream)+"; raise WXFLOW_STREAM_MAX_BYTES / WXFLOW_STREAM_MAX_MSGS or find the consumer that stopped", attrs...)
		case level > prev:
			e.log.Warn("stream filling: past 80% of its limit; raise WXFLOW_STREAM_MAX_BYTES / WXFLOW_STREAM_MAX_MSGS or find the consumer that stopped", attrs...)
		case level < prev && level == 0:
			e.log.Info("stream below 80% of its limit again", attrs...)
		}
	}
	return fills, err
}

// fullMeans says what a full stream does.
func fullMeans(stream string) string {
	if stream == CommandStream {
		return "new commands are refused until the engine takes some"
	}
	return "its oldest messages are dropped"
}
