package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestClusterNodeLoss runs orders on a 3-node JetStream cluster whose streams
// and buckets are replicated three times, kills the node leading the command
// stream in the middle of the run and brings it back a few seconds later:
// every order must still reach its right state, each event once in the
// stream, and `wxflow verify` must find no breach.
func TestClusterNodeLoss(t *testing.T) {
	orders := 120
	if testing.Short() {
		orders = 30
	}
	cluster := enginetest.StartCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn", Replicas: 3}
	// Warnings are kept and shown if the test fails: a liveness problem on a
	// cluster is only diagnosable from what each part said at the time.
	var logs lockedBuffer
	var logTo io.Writer = &logs
	if os.Getenv("WXFLOW_TEST_LOG") != "" {
		logTo = io.MultiWriter(&logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("last warnings:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 3*time.Second, 3*time.Second
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSURL: cluster.URL(), SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{DuplicateNotify: true, Seed: 11}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })

	done := make(chan []demo.Result, 1)
	go func() {
		done <- demo.Run(ctx, demo.Config{Orders: orders, Concurrency: 16, APIURL: st.APIURL, ShopKey: st.ShopKey, SimURL: st.SimURL,
			SimClient: st.Sim.Client(), Timeout: 120 * time.Second})
	}()

	// Once a third of the orders exist, kill the command stream's leader.
	enginetest.WaitFor(t, 60*time.Second, func() error {
		n, err := st.Store.CountOrders(ctx)
		if err != nil || n < orders/3 {
			return errorf("%d orders so far (%v)", n, err)
		}
		return nil
	})
	nc, err := nats.Connect(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	leader := cluster.Leader(ctx, js, engine.CommandStream)
	if leader < 0 {
		leader = 0
	}
	cluster.Kill(leader)
	t.Logf("killed node%d, the leader of %s", leader+1, engine.CommandStream)
	time.Sleep(3 * time.Second)
	cluster.Restart(leader)
	t.Logf("node%d is back", leader+1)

	for _, r := range <-done {
		if !r.OK() {
			t.Errorf("order #%d %s (%s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Got, r.Want, r.Err)
		}
	}
	if t.Failed() {
		return
	}
	// Generous: the relay may still be catching up after the node came back
	// on a loaded 2-core machine.
	enginetest.WaitFor(t, 90*time.Second, func() error {
		backlog, err := st.Store.OutboxBacklog(ctx)
		if err != nil || backlog > 0 {
			return errorf("outbox backlog %d (%v)", backlog, err)
		}
		return nil
	})
	runVerify(t, ctx, s.DataDir, st.NATSURL)
}

// lockedBuffer is a bytes.Buffer safe for the loggers of many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
