package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// syncBuffer is a log sink safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStreamLimits: every stream has limits; a full command stream refuses a
// command rather than drop one; the engine warns once when a stream passes
// 80 % and once when it is full, and the fill is measured for the metric.
func TestStreamLimits(t *testing.T) {
	_, nc, js := enginetest.StartNATS(t)
	ctx := context.Background()
	// Defaults on every stream.
	for _, name := range engine.Streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.MaxBytes != 1<<30 || cfg.MaxMsgs != 1_000_000 {
			t.Errorf("%s: max bytes %d, max msgs %d; want 1 GiB and 1,000,000", name, cfg.MaxBytes, cfg.MaxMsgs)
		}
		if want := map[bool]jetstream.DiscardPolicy{true: jetstream.DiscardNew, false: jetstream.DiscardOld}[name == engine.CommandStream]; cfg.Discard != want {
			t.Errorf("%s: discard %v, want %v", name, cfg.Discard, want)
		}
	}
	// Provisioned again with small limits, as another process with other settings would.
	if err := engine.Provision(ctx, js, engine.StreamsConfig{MaxMsgs: 10}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	e, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, enginetest.OpenSQLite(t), nc, js)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := js.Publish(ctx, fmt.Sprintf("%sprepay.o%d", engine.DeadLetterPrefix, i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stream string, want float64) {
		t.Helper()
		fills, err := e.CheckStreams(ctx)
		if err != nil || len(fills) != len(engine.Streams) {
			t.Fatalf("fills %+v, %v", fills, err)
		}
		for _, f := range fills {
			if f.Stream == stream && f.Ratio != want {
				t.Fatalf("%s is %.2f full, want %.2f", stream, f.Ratio, want)
			}
		}
	}
	check(engine.DeadStream, 0.8)
	check(engine.DeadStream, 0.8) // warned once, not every check
	if got := strings.Count(logs.String(), "stream filling"); got != 1 || !strings.Contains(logs.String(), "stream="+engine.DeadStream) {
		t.Fatalf("%d warnings, want 1:\n%s", got, logs.String())
	}
	// The command stream, full, refuses the next command: nothing is dropped.
	for i := range 10 {
		c := engine.Command{ID: fmt.Sprintf("flag:%d", i), Verb: engine.VerbFlag, Origin: engine.OriginAPI, OrderID: "o1", Flag: &engine.FlagInfo{Reason: "x"}, At: time.Now()}
		if _, err := engine.Publish(ctx, js, c, nil); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	c := engine.Command{ID: "flag:10", Verb: engine.VerbFlag, OrderID: "o1", Flag: &engine.FlagInfo{Reason: "x"}}
	if _, err := engine.Publish(ctx, js, c, nil); err == nil {
		t.Fatal("a full command stream took an 11th command")
	}
	check(engine.CommandStream, 1)
	if !strings.Contains(logs.String(), "stream full: new commands are refused") {
		t.Fatalf("no warning of the full command stream:\n%s", logs.String())
	}
}
