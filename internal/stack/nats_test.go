package stack

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
)

// TestShopAddedWhileNATSRuns: a shop added to the data folder while the
// embedded server runs can connect once the server has reloaded its users;
// before, it cannot.
func TestShopAddedWhileNATSRuns(t *testing.T) {
	s := Settings{DataDir: t.TempDir()}
	s.Resolve()
	ns, err := StartNATS(&s, natsembed.Config{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchUsers(ctx, &s, ns, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	dir := natsauth.Dir(s.DataDir)
	connect := func() error {
		opts, err := natsauth.ClientOptions(natsauth.SeedFile(dir, natsauth.Shop("late")), natsauth.Shop("late"))
		if err != nil {
			return err
		}
		nc, err := nats.Connect(ns.ClientURL(), append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	if _, err := natsauth.AddShop(dir, "late", []string{"default"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for err := connect(); err != nil; err = connect() {
		if time.Now().After(deadline) {
			t.Fatalf("the shop added while the server ran still cannot connect: %v", err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
	// Anonymous clients stay out.
	if nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected")
	}
}
