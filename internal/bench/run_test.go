package bench_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/bench"
	"github.com/wxflow/wxflow/internal/cli"
)

// asWxflow makes this test binary the wxflow binary when it is started
// with it set: the bench's children (nats, engine, api, worker, the
// ceiling) are this binary, re-run.
const asWxflow = "BENCH_TEST_AS_WXFLOW=1"

func TestMain(m *testing.M) {
	if os.Getenv("BENCH_TEST_AS_WXFLOW") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func options(t *testing.T) bench.Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bench.Options{Executable: exe, Env: []string{asWxflow}, DataDir: t.TempDir()}
}

// TestBench runs `wxflow bench` small: every order through the lifecycle
// with wxflow in processes of its own, the report's CPU per order by
// process, the ceiling measured in its own process on the same NATS and
// database, and the ratio; sane values, no timing.
func TestBench(t *testing.T) {
	o := options(t)
	o.Orders, o.Concurrency, o.PayAPI, o.RefundEvery, o.Warmup, o.Interval, o.Idle = 20, 4, "mixed", 5, 4, 200*time.Millisecond, 500*time.Millisecond
	rep, err := bench.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 20 || rep.Refunded != 4 || rep.OrdersPerS <= 0 || rep.Warmup != 4 || rep.Workers != "all" {
		t.Fatalf("report: %+v", rep)
	}
	// By default the orders spread over the four dev merchants that take
	// orders, two direct and two sub-merchants, two in a row each: pairs
	// 0-9 go to merchants 0,1,2,3,0,1,2,3,0,1.
	want := map[string]int{"default": 6, "second": 6, "provider-sub1": 4, "provider-sub2": 4}
	if !slices.Equal(rep.Merchants, bench.OrderMerchants()) || !maps.Equal(rep.OrdersByMerchant, want) {
		t.Errorf("merchants %v, orders by merchant %v; want %v", rep.Merchants, rep.OrdersByMerchant, want)
	}
	for _, step := range []string{"created_authorized", "authorized_prepaid", "prepaid_signed", "signed_notified", "created_notified"} {
		if p := rep.Latency[step]; p.N != 20 || p.P50 > p.P99 || p.P99 > p.Max {
			t.Errorf("latency %s: %+v", step, p)
		}
	}
	if p := rep.Latency["refunding_refunded"]; p.N != 4 {
		t.Errorf("refund latency: %+v", p)
	}

	// wxflow's CPU: each of its processes worked, and the total is theirs.
	k := rep.CPUMSPerOrderByKind
	for _, kind := range []string{bench.KindEngine, bench.KindAPI, bench.KindWorkers, bench.KindNATS} {
		if k[kind] <= 0 || rep.PeakRSSMiB[kind] <= 0 {
			t.Errorf("%s: CPU %v ms per order, peak RSS %v MiB", kind, k[kind], rep.PeakRSSMiB[kind])
		}
	}
	if sum := k[bench.KindEngine] + k[bench.KindAPI] + k[bench.KindWorkers]; rep.CPUMSPerOrder <= 0 || abs(sum-rep.CPUMSPerOrder) > 0.01 {
		t.Errorf("CPU per order %v, its parts add up to %v", rep.CPUMSPerOrder, sum)
	}
	if rep.IdleSeconds <= 0 || rep.IdleCPUMSPerS[bench.KindEngine] < 0 || len(rep.IdleCPUMSPerS) != 4 {
		t.Errorf("idle: %v s, %v", rep.IdleSeconds, rep.IdleCPUMSPerS)
	}
	if len(rep.Processes) != 4 || rep.ClockTicks <= 0 || rep.DriverCPUMSPerOrder <= 0 {
		t.Errorf("processes %+v, clock ticks %d, driver %v", rep.Processes, rep.ClockTicks, rep.DriverCPUMSPerOrder)
	}

	// The ceiling: 10 v2 and 10 v3 orders, of which orders 0 and 10 (v2)
	// and 5 and 15 (v3) refunded.
	c := rep.Ceiling
	ops := c.Counts
	if ops.RSASigns != 2*10+2 || ops.RSAVerifies != 2*10+2*2 || ops.AESGCMOpens != 10+2 || ops.MD5Signs != 4*10+2*2 || ops.AESECBOpens != 2 {
		t.Errorf("protocol operations: %+v", ops)
	}
	if c.ProtocolCPUMSPerOrder <= 0 || c.SQLCPUMSPerOrder <= 0 || c.NATSCPUMSPerOrder <= 0 || c.NATSServerCPUMSPerOrder < 0 ||
		abs(c.CPUMSPerOrder-(c.ProtocolCPUMSPerOrder+c.SQLCPUMSPerOrder+c.NATSCPUMSPerOrder)) > 1e-9 {
		t.Errorf("ceiling CPU: %+v", c)
	}
	// Transactions: create (created and authorized at once), prepaid, signed,
	// notified for each order, refund (queued and sent at once) and refunded
	// for 4; events: one more per order and per refund. A v2 refund's
	// notification asks for a replay (one transaction, one event) when it
	// comes before the refund worker's own query found the refund settled: a
	// few more, as the simulator's timing goes.
	extra := c.Transactions - (20*4 + 4*2)
	if extra < 0 || extra > 4 || c.RoundTrips != 2*(20*5+4*3+extra) {
		t.Errorf("ceiling transactions %d, round trips %d", c.Transactions, c.RoundTrips)
	}
	if want := c.CPUMSPerOrder / rep.CPUMSPerOrder; rep.Ratio <= 0 || abs(rep.Ratio-want) > 1e-9 || rep.RatioWithNATS <= 0 {
		t.Errorf("ratio %v (want %v), with NATS %v", rep.Ratio, want, rep.RatioWithNATS)
	}
	if rep.WeChatCallsPerOrder < 1 || rep.DBBytes == 0 || rep.StreamBytes == 0 {
		t.Errorf("calls per order %v, DB %d bytes, stream %d bytes", rep.WeChatCallsPerOrder, rep.DBBytes, rep.StreamBytes)
	}
	for _, in := range rep.Intervals {
		if in.At <= 0 || in.Orders < 0 || in.CPUMSPerOrder < 0 || in.RSSMiB[bench.KindEngine] <= 0 {
			t.Errorf("interval %+v", in)
		}
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	// Every child has ended.
	if pids := childrenOf(t, o.DataDir); len(pids) > 0 {
		t.Errorf("processes still running for %s: %v", o.DataDir, pids)
	}
}

// TestBenchSignalCleansUp: `wxflow bench` stopped by a signal (SIGHUP, which
// main does not catch) mid-run stops every process it started and removes
// its temporary folder.
func TestBenchSignalCleansUp(t *testing.T) {
	tmp := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "bench", "--orders", "100000", "--concurrency", "2", "--json")
	cmd.Env = append(os.Environ(), asWxflow, "TMPDIR="+tmp)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until the run's processes are up: the workers' log exists once
	// every child has been started.
	deadline := time.Now().Add(2 * time.Minute)
	var dir string
	for dir == "" {
		if m, _ := filepath.Glob(filepath.Join(tmp, "wxflow-bench-*", "logs", "worker-all.log")); len(m) > 0 {
			dir = filepath.Dir(filepath.Dir(m[0]))
		}
		select {
		case err := <-done:
			t.Fatalf("bench ended before its processes started: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no worker process after 2 minutes:\n%s", out.String())
		}
	}
	if len(childrenOf(t, dir)) == 0 {
		t.Fatalf("no process runs for %s", dir)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("bench stopped by a signal exited 0:\n%s", out.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("bench still running 2 minutes after SIGHUP:\n%s", out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary folder %s left behind (%v)", dir, err)
	}
	if pids := childrenOf(t, dir); len(pids) > 0 {
		t.Errorf("processes still running for %s: %v", dir, pids)
	}
}

// childrenOf lists the processes whose command line names dir.
func childrenOf(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []string
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(raw), dir) {
			continue
		}
		// A zombie has no command line; a live child does.
		pids = append(pids, e.Name()+": "+strings.ReplaceAll(string(raw), "\x00", " "))
	}
	return pids
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestBenchWorkersEach: with --workers each every worker kind is a process
// of its own, each counted among the workers.
func TestBenchWorkersEach(t *testing.T) {
	o := options(t)
	o.Orders, o.Concurrency, o.PayAPI, o.RefundEvery, o.Warmup, o.Idle, o.Workers = 6, 2, "v3", 3, 2, 200*time.Millisecond, "each"
	rep := runProcesses(t, o)
	if n := count(rep, bench.KindWorkers); n < 6 || count(rep, bench.KindEngine) != 1 {
		t.Errorf("%d worker processes, %d engines: %+v", n, count(rep, bench.KindEngine), rep.Processes)
	}
}

// TestBenchOneMerchant: --merchants 1 sends every order to the first
// merchant; more merchants than the dev set has are refused.
func TestBenchOneMerchant(t *testing.T) {
	o := options(t)
	o.Orders, o.Concurrency, o.PayAPI, o.RefundEvery, o.Warmup, o.Idle, o.Merchants = 6, 2, "mixed", 3, 2, 200*time.Millisecond, 1
	rep := runProcesses(t, o)
	if !slices.Equal(rep.Merchants, []string{"default"}) || !maps.Equal(rep.OrdersByMerchant, map[string]int{"default": 6}) {
		t.Errorf("merchants %v, orders by merchant %v", rep.Merchants, rep.OrdersByMerchant)
	}
	for _, n := range []int{-1, len(bench.OrderMerchants()) + 1} {
		o.Merchants = n
		if _, err := bench.Run(t.Context(), o); !errors.Is(err, bench.ErrMerchants) {
			t.Errorf("%d merchants: %v, want ErrMerchants", n, err)
		}
	}
}

// TestBenchTwoEnginesPostgres: with --engines 2 on PostgreSQL both engines
// are processes of their own, both counted; on SQLite it is refused.
func TestBenchTwoEnginesPostgres(t *testing.T) {
	o := options(t)
	o.Orders, o.Concurrency, o.PayAPI, o.RefundEvery, o.Warmup, o.Idle, o.Engines = 6, 2, "v2", 3, 2, 200*time.Millisecond, 2
	if _, err := bench.Run(t.Context(), o); !errors.Is(err, bench.ErrEnginesNeedPostgres) {
		t.Fatalf("two engines on SQLite: %v", err)
	}
	o.DBURL = enginetest.PostgresSchema(t)
	rep := runProcesses(t, o)
	if count(rep, bench.KindEngine) != 2 || rep.Engines != 2 {
		t.Errorf("engines: %+v", rep.Processes)
	}
}

// runProcesses runs the bench and checks what every run's report holds.
func runProcesses(t *testing.T, o bench.Options) *bench.Report {
	t.Helper()
	rep, err := bench.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Processes {
		if p.CPUSeconds < 0 || p.PeakRSSMiB <= 0 {
			t.Errorf("process %+v", p)
		}
	}
	if count(rep, bench.KindAPI) != 1 || count(rep, bench.KindNATS) != 1 {
		t.Errorf("processes: %+v", rep.Processes)
	}
	if rep.Orders != o.Orders || rep.Refunded != 2 || rep.CPUMSPerOrder <= 0 || rep.Ratio <= 0 {
		t.Errorf("report: orders %d, refunded %d, CPU %v, ratio %v", rep.Orders, rep.Refunded, rep.CPUMSPerOrder, rep.Ratio)
	}
	return rep
}

func count(rep *bench.Report, kind string) int {
	n := 0
	for _, p := range rep.Processes {
		if p.Kind == kind {
			n++
		}
	}
	return n
}
