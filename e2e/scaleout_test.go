package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestScaleOutEngineKilled runs wxflow scaled out as separate OS processes
// of the real binary: two engines, two processes of each worker kind and
// the API, on one PostgreSQL and one NATS (with wxflow's users), against the
// simulator. Once a third of the demo's orders exist, one engine is killed
// with SIGKILL; the other goes on alone. Every order must end in its right
// state, WeChat's books and wxflow's must agree (nothing lost or doubled),
// each order's events must be seq 1..n in the store and in that order on the
// stream, each event once, and `wxflow verify` must find no breach.
func TestScaleOutEngineKilled(t *testing.T) {
	orders := 84
	if testing.Short() {
		orders = 28
	}
	dsn := enginetest.PostgresSchema(t) // skips, loudly, without PostgreSQL
	bin := buildWxflow(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	data := t.TempDir()
	s := stack.Settings{DataDir: data, DBURL: dsn}

	// One NATS, in this process, accepting only wxflow's users (their keys
	// are made in the data folder, where each process finds its own).
	ns, err := stack.StartNATS(&s, natsembed.Config{Port: -1, ServerName: "scaleout"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	s.NATSURL = ns.ClientURL()
	s.Resolve()

	// The simulator, in this process: the one fake.
	simulator, err := stack.NewSim(sim.Config{KeysDir: filepath.Join(data, "sim"), TimeScale: 0.01,
		Faults: sim.Faults{DuplicateNotify: true, Seed: 17}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulator.ListenBackup("", false); err != nil {
		t.Fatal(err)
	}
	go func() { _ = simulator.Run(ctx) }()
	go func() { _ = simulator.Serve(ctx, simulator.Listener) }()
	go func() { _ = simulator.ServeSite(ctx, simulator.Backup, sim.SiteBackup) }()

	// The store, as this test reads it, and the demo's shop.
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	secret, err := s.ServerSecret()
	if err != nil {
		t.Fatal(err)
	}
	shopKey, _, err := stack.EnsureShop(ctx, store, secret, stack.DemoShop, []string{s.MerchantName}, stack.ShopKeyFile(data, stack.DemoShop))
	if err != nil {
		t.Fatal(err)
	}

	apiAddr, publicAddr := freeAddr(t), freeAddr(t)
	env := []string{"WXFLOW_DATA=" + data, "WXFLOW_DB_URL=" + dsn, "WXFLOW_NATS_URL=" + s.NATSURL,
		"WXFLOW_WECHAT_URL=" + simulator.URL, "WXFLOW_WECHAT_BACKUP_URL=" + simulator.BackupURL,
		"WXFLOW_MERCHANT_DIR=" + filepath.Join(data, "sim"), "WXFLOW_WECHAT_CA=" + filepath.Join(data, "sim", sim.CAFile),
		"WXFLOW_HTTP_ADDR=" + apiAddr, "WXFLOW_PUBLIC_ADDR=" + publicAddr, "WXFLOW_SHOP_RATE=100000", "WXFLOW_PUBLIC_RATE=100000",
		"WXFLOW_LOG=text", "WXFLOW_LOG_LEVEL=warn",
		"WXFLOW_EXPIRY_INTERVAL=200ms", "WXFLOW_RECONCILE_PAYMENT_AFTER=3s", "WXFLOW_RECONCILE_REFUND_AFTER=3s"}
	procs := &processes{t: t, bin: bin, env: env, logs: t.TempDir()}
	t.Cleanup(procs.stop)
	// Each engine serves its metrics: what it applied is counted there.
	metricsAddrs := []string{freeAddr(t), freeAddr(t)}
	engines := []*process{procs.start("engine1", []string{"WXFLOW_METRICS_ADDR=" + metricsAddrs[0]}, "engine"),
		procs.start("engine2", []string{"WXFLOW_METRICS_ADDR=" + metricsAddrs[1]}, "engine")}
	procs.start("api", nil, "api", "--no-admin")
	var kinds []string
	for _, k := range stack.WorkerKinds() {
		if k != stack.WorkerAll {
			kinds = append(kinds, k)
			procs.start(k+"1", nil, "worker", k)
			procs.start(k+"2", nil, "worker", k)
		}
	}
	// Every process is connected, and the API answers.
	// The webhook deliverer works on the database alone: it never connects to NATS.
	want := 3 + 2*len(kinds)
	if slices.Contains(kinds, stack.WorkerWebhook) {
		want -= 2
	}
	enginetest.WaitFor(t, 90*time.Second, func() error {
		if exited := procs.exited(); exited != "" {
			t.Fatalf("%s exited early", exited)
		}
		if n := wxflowConns(t, ns); n < want {
			return fmt.Errorf("%d of %d processes connected to NATS", n, want)
		}
		for _, u := range []string{"http://" + apiAddr + "/readyz", "http://" + metricsAddrs[0] + "/metrics", "http://" + metricsAddrs[1] + "/metrics"} {
			resp, err := http.Get(u)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", u, resp.Status)
			}
		}
		return nil
	})
	t.Logf("%d processes: engine ×2, api, worker ×2 of each kind (%s)", want, strings.Join(kinds, ", "))

	cfg := demo.Config{Orders: orders, Concurrency: 16, APIURL: "http://" + apiAddr, NotifyURL: "http://" + publicAddr,
		ShopKey: shopKey, SimURL: simulator.URL, SimClient: simulator.Client(), Timeout: 150 * time.Second}
	done := make(chan []demo.Result, 1)
	start := time.Now()
	go func() { done <- demo.Run(ctx, cfg) }()

	// Once a third of the orders exist, and both engines have taken commands
	// from the shared work queue, kill one engine: SIGKILL, no goodbye.
	var applied [2]int
	var made int
	enginetest.WaitFor(t, 120*time.Second, func() error {
		var err error
		made, err = store.CountOrders(ctx)
		if err != nil || made < orders/3 {
			return fmt.Errorf("%d orders so far (%v)", made, err)
		}
		for i, addr := range metricsAddrs {
			if applied[i], err = transitions(addr); err != nil || applied[i] == 0 {
				return fmt.Errorf("%s has applied nothing yet (%v)", engines[i].name, err)
			}
		}
		return nil
	})
	engines[0].kill()
	t.Logf("SIGKILL to engine1 (pid %d) with %d of %d orders made, %s into the run; transitions applied so far: engine1 %d, engine2 %d",
		engines[0].pid(), made, orders, time.Since(start).Round(time.Millisecond), applied[0], applied[1])

	results := <-done
	survivor, err := transitions(metricsAddrs[1])
	t.Logf("%d orders in %s; engine2 applied %d transitions in all (%v)", orders, time.Since(start).Round(time.Millisecond), survivor, err)
	for _, r := range results {
		if !r.OK() {
			t.Errorf("order #%d %s (%s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Got, r.Want, r.Err)
		}
	}
	ledger, err := demo.AuditLedger(ctx, cfg, results)
	if err != nil || !ledger.OK() {
		t.Errorf("WeChat's books and wxflow's: %v (%v)", ledger, err)
	}
	t.Log(ledger)
	if t.Failed() {
		return
	}

	// The surviving engine's relay publishes what the killed one left.
	enginetest.WaitFor(t, 60*time.Second, func() error {
		backlog, err := store.OutboxBacklog(ctx)
		if err != nil || backlog > 0 {
			return fmt.Errorf("outbox backlog %d (%v)", backlog, err)
		}
		return nil
	})
	// In the store: each order's events are seq 1..n, it ends where it
	// should, and a paid order was paid once.
	inStore := map[engine.OrderID]int64{}
	for _, r := range results {
		h, err := store.History(ctx, r.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		notified := 0
		for _, x := range h {
			if x.Applied {
				seqs = append(seqs, x.Seq)
				if x.Type == string(engine.EventNotified) {
					notified++
				}
			}
		}
		slices.Sort(seqs)
		for i, seq := range seqs {
			if seq != int64(i+1) {
				t.Errorf("order %s: event seqs %v, want 1..%d", r.OrderID, seqs, len(seqs))
				break
			}
		}
		inStore[r.OrderID] = int64(len(seqs))
		if paid := r.Want != engine.Closed; paid && notified != 1 || !paid && notified != 0 {
			t.Errorf("order %s (%s): %d notified events", r.OrderID, r.Scenario, notified)
		}
	}
	// On the stream: each event once, each order's in sequence.
	nc, js := connectAs(t, &s, natsauth.Monitor)
	defer nc.Close()
	stream, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[engine.OrderID]int64{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev engine.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if seen[ev.ID] {
			t.Errorf("event %s is twice in the stream", ev.ID)
		}
		seen[ev.ID] = true
		if ev.Seq != last[ev.OrderID]+1 {
			t.Errorf("order %s: event seq %d follows %d in the stream", ev.OrderID, ev.Seq, last[ev.OrderID])
		}
		last[ev.OrderID] = ev.Seq
	}
	for id, n := range inStore {
		if last[id] != n {
			t.Errorf("order %s: %d events in the store, the stream ends at seq %d", id, n, last[id])
		}
	}
	t.Logf("%d events, each once in the stream and in each order's sequence", len(seen))
	t.Setenv("WXFLOW_DB_URL", dsn) // verify reads the store the processes wrote
	runVerify(t, ctx, data, s.NATSURL)
}

// buildWxflow builds the wxflow binary into the test's temporary folder.
func buildWxflow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wxflow")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/wxflow/wxflow").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr is a free loopback address, for a process that is told where to listen.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// wxflowConns counts the NATS server's connections of wxflow processes
// (each names itself "wxflow <role>").
func wxflowConns(t *testing.T, ns *natsembed.Server) int {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		if strings.HasPrefix(c.Name, "wxflow ") {
			n++
		}
	}
	return n
}

// transitions sums wxflow_transitions_total on a process's /metrics.
func transitions(addr string) (int, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "wxflow_transitions_total{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				total += v
			}
		}
	}
	return int(total), nil
}

// processes are the test's wxflow processes, each logging to its own file.
type processes struct {
	t    *testing.T
	bin  string
	env  []string
	logs string
	all  []*process
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs the binary with args, with the processes' environment and extra.
func (ps *processes) start(name string, extra []string, args ...string) *process {
	ps.t.Helper()
	log := filepath.Join(ps.logs, name+".log")
	f, err := os.Create(log)
	if err != nil {
		ps.t.Fatal(err)
	}
	cmd := exec.Command(ps.bin, args...)
	cmd.Env = append(append(os.Environ(), ps.env...), extra...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		ps.t.Fatal(err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	ps.all = append(ps.all, p)
	return p
}

// exited names a process that has exited, "" when none has.
func (ps *processes) exited() string {
	for _, p := range ps.all {
		select {
		case <-p.done:
			return p.name
		default:
		}
	}
	return ""
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends every process (SIGTERM, then SIGKILL after 15 s) and, when the
// test failed, shows the end of each one's log.
func (ps *processes) stop() {
	for _, p := range ps.all {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ps.all {
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		if b, _ := os.ReadFile(p.log); ps.t.Failed() && len(b) > 0 {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			ps.t.Logf("%s (pid %d), last lines:\n%s", p.name, p.pid(), strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	}
}
