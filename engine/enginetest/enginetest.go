// Package enginetest starts the real parts wxflow's tests run on: an
// in-process NATS server with JetStream on a free port, a SQLite file, the
// machine's PostgreSQL when there is one.
package enginetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
)

// StartNATS runs a JetStream server on a random loopback port with its store
// in t.TempDir(), provisions wxflow's streams, and connects to it. Set
// WXFLOW_TEST_LOG=1 to see the server's logs.
func StartNATS(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
		NoLog: os.Getenv("WXFLOW_TEST_LOG") == ""}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !opts.NoLog {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := engine.Provision(ctx, js, engine.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	return ns, nc, js
}

// OpenSQLite opens a fresh store in a SQLite file under t.TempDir().
func OpenSQLite(t testing.TB) *engine.Store {
	t.Helper()
	s, _ := OpenSQLiteWithDB(t)
	return s
}

// OpenSQLiteWithDB opens a fresh store in a SQLite file under t.TempDir(),
// and a second connection to the same file for the test's own SQL: tests
// that break rows on purpose (a lost publication, a forged history) or fill
// tables fast. The store itself runs no SQL but its own methods'.
func OpenSQLiteWithDB(t testing.TB) (*engine.Store, *sqlx.DB) {
	t.Helper()
	path := t.TempDir() + "/wxflow.db"
	s, err := engine.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db, err := sqlx.Open(string(engine.SQLite), "file:"+path+"?_busy_timeout=10000&_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return s, db
}

// PostgresDSN is the test database: WXFLOW_TEST_POSTGRES, or the machine's
// server on 127.0.0.1:5432 with trust auth and database "test".
func PostgresDSN() string {
	if dsn := os.Getenv("WXFLOW_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// OpenPostgres opens a fresh store in its own schema of the test database,
// dropped at cleanup. Without a reachable server the test is skipped, loudly.
func OpenPostgres(t testing.TB) *engine.Store {
	t.Helper()
	dsn := PostgresSchema(t)
	// Migrating gets a minute, as a loaded 2-core machine may need.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := engine.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresSchema makes a fresh, empty schema in the test database and
// returns the DSN that uses it (search_path), for tests that open several
// stores on one database, as several engine processes do; the schema is
// dropped at cleanup, after the stores opened later are closed. Without a
// reachable server the test is skipped, loudly.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresDSN()
	// Finding the server gets 5 s; creating the schema gets a minute, as a
	// loaded 2-core machine may need.
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := engine.OpenRaw(pctx, base)
	if err != nil {
		t.Skipf("SKIPPING the PostgreSQL path: no PostgreSQL at %s (%v); set WXFLOW_TEST_POSTGRES to test it", base, err)
	}
	schema := fmt.Sprintf("wxflow_test_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Skipf("SKIPPING the PostgreSQL path: cannot create a schema (%v)", err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// WaitFor polls check until it returns nil or d passes.
func WaitFor(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RunEngine runs e (intake, relay, expiry, reconciler) until the end of the
// test, and waits for it to stop.
func RunEngine(t testing.TB, e *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// StartEngine is the usual stack of a test: a NATS server, a SQLite store and
// an engine over them with the default config, running until the test ends.
func StartEngine(t testing.TB) (*engine.Engine, *engine.Store, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	_, nc, js := StartNATS(t)
	store := OpenSQLite(t)
	e, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	RunEngine(t, e)
	return e, store, nc, js
}
