package bench

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// CeilingSpec is the work of the ceiling: what the lifecycle of the run's
// orders needs and nothing more. The bench hands it to `wxflow bench
// ceiling`, a process of its own, as JSON.
type CeilingSpec struct {
	MerchantDir string `json:"merchant_dir"` // the merchant's keys and the simulator's (WeChat's side, signed beforehand)
	NATSURL     string `json:"nats_url"`
	DBURL       string `json:"db_url"`
	NATSPID     int    `json:"nats_pid"` // the NATS server's process, whose CPU is read around the NATS part; 0: not read
	Concurrency int    `json:"concurrency"`
	// Orders and refunds of each pay API, as the run had them.
	V2Orders  int `json:"v2_orders"`
	V3Orders  int `json:"v3_orders"`
	V2Refunds int `json:"v2_refunds"`
	V3Refunds int `json:"v3_refunds"`
	// Transactions and Events the engine committed in the run: as many SQL
	// transactions of Apply's shape, and two JetStream round trips per event
	// (the event to a worker, a command back).
	Transactions int `json:"transactions"`
	Events       int `json:"events"`
}

// CeilingResult is what `wxflow bench ceiling` prints: the CPU (user +
// system, from getrusage: every thread of the process) and the wall time of
// each part, in seconds, measured one after the other with nothing else
// running in the process.
type CeilingResult struct {
	ProtocolCPU     float64        `json:"protocol_cpu_s"`
	SQLCPU          float64        `json:"sql_cpu_s"`
	NATSCPU         float64        `json:"nats_cpu_s"`
	ProtocolSeconds float64        `json:"protocol_s"`
	SQLSeconds      float64        `json:"sql_s"`
	NATSSeconds     float64        `json:"nats_s"`
	NATSServerCPU   float64        `json:"nats_server_cpu_s"` // the NATS server's CPU during the NATS part; 0 when not read
	RoundTrips      int            `json:"round_trips"`
	Counts          protocolCounts `json:"counts"`
}

// RunCeiling does the ceiling's work (the process of `wxflow bench
// ceiling`): every setup first, outside the measure, then the protocol's
// work for every order, the SQL transactions and the NATS round trips, each
// with the process's own CPU time read before and after.
func RunCeiling(ctx context.Context, spec CeilingSpec) (*CeilingResult, error) {
	conc := max(spec.Concurrency, 1)
	m, err := wechat.LoadMerchant("default", spec.MerchantDir)
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	wxKey, err := loadRSAKey(filepath.Join(spec.MerchantDir, sim.WechatPayPrivateKeyFile))
	if err != nil {
		return nil, fmt.Errorf("ceiling: WeChat's key: %w", err)
	}
	proto, err := newProtocol(m, wxKey)
	if err != nil {
		return nil, fmt.Errorf("ceiling: WeChat's answers: %w", err)
	}
	store, err := engine.Open(ctx, spec.DBURL)
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	defer store.Close()
	nc, err := nats.Connect(spec.NATSURL, nats.Name("wxflow bench ceiling"))
	if err != nil {
		return nil, fmt.Errorf("ceiling: NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	res := &CeilingResult{}
	res.Counts.add(v2PayCounts, spec.V2Orders)
	res.Counts.add(v3PayCounts, spec.V3Orders)
	res.Counts.add(v2RefundCounts, spec.V2Refunds)
	res.Counts.add(v3RefundCounts, spec.V3Refunds)

	// The protocol: every order's own work, as many at once as the run had.
	type job struct {
		do func(int) error
		n  int
	}
	jobs := []job{{proto.v2Pay, spec.V2Orders}, {proto.v3Pay, spec.V3Orders}, {proto.v2Refund, spec.V2Refunds}, {proto.v3Refund, spec.V3Refunds}}
	cpu0, t0 := selfCPU(), time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, j := range jobs {
		for i := range j.n {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error { return j.do(i) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("ceiling, protocol: %w", err)
	}
	res.ProtocolCPU, res.ProtocolSeconds = (selfCPU() - cpu0).Seconds(), time.Since(t0).Seconds()

	// SQL: transactions of Apply's shape (engine.Store.MeasureSQLCeiling).
	cpu0 = selfCPU()
	took, err := store.MeasureSQLCeiling(ctx, spec.Transactions, conc)
	if err != nil {
		return nil, fmt.Errorf("ceiling, SQL: %w", err)
	}
	res.SQLCPU, res.SQLSeconds = (selfCPU() - cpu0).Seconds(), took.Seconds()

	if err := natsCeiling(ctx, js, 2*spec.Events, conc, spec.NATSPID, res); err != nil {
		return nil, fmt.Errorf("ceiling, NATS: %w", err)
	}
	return res, nil
}

// natsCeiling makes trips JetStream round trips: a publish with a message
// id, waiting for its PubAck (as many at once as conc), consumed by a
// durable consumer that acks each, the shape of an event reaching a worker
// or a command reaching the engine.
func natsCeiling(ctx context.Context, js jetstream.JetStream, trips, conc, natsPID int, res *CeilingResult) error {
	const stream = "BENCH_CEILING"
	_ = js.DeleteStream(ctx, stream) // left by a run that was stopped
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"bench.ceiling"}, Storage: jetstream.FileStorage}); err != nil {
		return err
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), stream)
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "ceiling", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	if trips == 0 {
		close(done)
	}
	hz := clockTicks()
	server0, _ := processCPU(natsPID, hz)
	cpu0, t0 := selfCPU(), time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(trips) {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	data := []byte(strings.Repeat("x", 1200)) // an event of an order with its snapshot
	for i := range trips {
		g.Go(func() error {
			_, err := js.Publish(gctx, "bench.ceiling", data, jetstream.WithMsgID(fmt.Sprintf("c%d", i)))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%d of %d consumed", got.Load(), trips)
	case <-ctx.Done():
		return ctx.Err()
	}
	res.NATSCPU, res.NATSSeconds, res.RoundTrips = (selfCPU() - cpu0).Seconds(), time.Since(t0).Seconds(), trips
	if natsPID > 0 {
		if server1, err := processCPU(natsPID, hz); err == nil {
			res.NATSServerCPU = (server1 - server0).Seconds()
		}
	}
	return nil
}

// loadRSAKey reads a PKCS#8 RSA private key in PEM.
func loadRSAKey(path string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return key, nil
}
