package enginetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsembed"
)

// Cluster is a JetStream cluster of embedded servers on loopback, for tests
// that kill a node in the middle of a run and bring it back. Each node keeps
// its ports and its store across Kill and Restart, as a restarted machine
// would.
type Cluster struct {
	t     testing.TB
	cfgs  []natsembed.Config
	nodes []*natsembed.Server
}

// StartCluster starts n nodes (3 for R3 streams) and waits until JetStream
// has a leader and wxflow's streams and buckets are provisioned with n
// replicas. Everything stops at the end of the test.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{t: t, cfgs: make([]natsembed.Config, n), nodes: make([]*natsembed.Server, n)}
	clusterPorts, routes := make([]int, n), make([]string, n)
	for i := range n {
		clusterPorts[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i])
	}
	for i := range n {
		c.cfgs[i] = natsembed.Config{Port: freePort(t), ServerName: fmt.Sprintf("node%d", i+1),
			StoreDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)), Logs: os.Getenv("WXFLOW_TEST_LOG") != "",
			Cluster: &natsembed.ClusterConfig{Name: "wxflow-test", Port: clusterPorts[i], Routes: routes}}
	}
	for i := range n {
		c.Restart(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Kill(i)
		}
	})
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return engine.Provision(ctx, js, engine.StreamsConfig{Replicas: n})
	})
	return c
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is every node's client URL, comma-separated, as nats.Connect takes it.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", cfg.Port)
	}
	return strings.Join(urls, ",")
}

// Kill stops node i at once, keeping its store; a no-op if it is down.
func (c *Cluster) Kill(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Stop()
		c.nodes[i] = nil
	}
}

// Restart starts node i again on its ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i] != nil {
		return
	}
	ns, err := natsembed.Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("node %d: %v", i+1, err)
	}
	c.nodes[i] = ns
}

// Leader is the index of the node leading stream's raft group, or -1 when
// it has none at the moment (an election is running).
func (c *Cluster) Leader(ctx context.Context, js jetstream.JetStream, stream string) int {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return -1
	}
	for i, cfg := range c.cfgs {
		if cfg.ServerName == info.Cluster.Leader {
			return i
		}
	}
	return -1
}
