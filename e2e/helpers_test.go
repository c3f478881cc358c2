package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// connectAs connects to the deployment of s as role, with the role's key
// from the data folder: the tests act on NATS with no more rights than the
// process they stand for.
func connectAs(t *testing.T, s *stack.Settings, role natsauth.Role) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, js, err := stack.ConnectNATS(ctx, s, role, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	return nc, js
}
