package webhook_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/webhook"
)

// crashChildDB names the SQLite file the child deliverer of
// TestCrashedDelivererLosesNothing works on; set only in the child.
const crashChildDB = "WXFLOW_WEBHOOK_CRASH_DB"

// TestCrashedDelivererLosesNothing kills a deliverer process (SIGKILL) while
// it holds deliveries in flight, in the middle of a run, then starts
// another: every event still reaches the endpoint, each order's in seq
// order. The dead process's leases end and the new one takes them over.
func TestCrashedDelivererLosesNothing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "wxflow.db")
	h := newHarness(t, func(tb testing.TB) *engine.Store {
		s, err := engine.Open(context.Background(), "sqlite:"+db)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	})
	var served, holding atomic.Int64
	holding.Store(1)
	rec := newReceiver(t, func(engine.Event, int) action {
		if served.Add(1) > 12 && holding.Load() == 1 {
			return answerHang // the child holds these when it dies
		}
		return answerOK
	})
	ep := h.endpoint(t, rec)
	ids := orderIDs("wk_", 10)
	h.run(t, ids)
	want := h.eventsOf(t, ids...)

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	child.Env = append(os.Environ(), crashChildDB+"="+db, "WXFLOW_WEBHOOK_CRASH_SECRET="+hex.EncodeToString(serverSecret))
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
		if t.Failed() { // the child's output, read once it has exited
			t.Logf("the child said:\n%s", out.String())
		}
	})
	enginetest.WaitFor(t, 60*time.Second, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.got) < 12 || rec.busy < 2 {
			return fmt.Errorf("child: %d processed, %d held", len(rec.got), rec.busy)
		}
		return nil
	})
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed = true
	holding.Store(0)
	rec.mu.Lock()
	before := len(rec.got)
	rec.mu.Unlock()
	leased, _ := h.store.WebhookDeliveries(context.Background(), engine.WebhookDeliveryFilter{EndpointID: ep.ID, State: engine.WebhookPending, Limit: 1000})
	t.Logf("killed the child with %d of %d events processed, %d pending", before, len(want), len(leased))

	h.deliverer(t, quick())
	enginetest.WaitFor(t, 60*time.Second, func() error { return rec.missing(want) })
	rec.check(t)
	enginetest.WaitFor(t, 30*time.Second, func() error {
		ds, err := h.store.WebhookDeliveries(context.Background(), engine.WebhookDeliveryFilter{EndpointID: ep.ID, Limit: 1000})
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.State != engine.WebhookDelivered {
				return fmt.Errorf("delivery %+v", d)
			}
		}
		return nil
	})
}

// TestCrashChild is the deliverer process TestCrashedDelivererLosesNothing
// kills; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	db := os.Getenv(crashChildDB)
	if db == "" {
		t.Skip("the child process of TestCrashedDelivererLosesNothing")
	}
	secret, err := hex.DecodeString(os.Getenv("WXFLOW_WEBHOOK_CRASH_SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := engine.Open(context.Background(), "sqlite:"+db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := quick()
	cfg.Secret, cfg.Timeout, cfg.Lease = secret, 4*time.Second, 5*time.Second // held requests hang until the kill
	d, err := webhook.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Run(context.Background()) // until killed
}
