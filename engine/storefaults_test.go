package engine_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// openSQLiteAt opens a store in dir with a short busy timeout, so that a
// locked database shows in milliseconds rather than the default 10 s.
func openSQLiteAt(t *testing.T, dir string) (*engine.Store, string) {
	t.Helper()
	path := filepath.Join(dir, "wxflow.db")
	store, err := engine.Open(context.Background(), "sqlite:"+path+"?_busy_timeout=50")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, path
}

// checkIntegrity runs SQLite's own check of the file at path.
func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q %v", ok, err)
	}
}

// failedApplies is a log handler that reports, on its channel, each command
// the intake failed to apply (and will try again): the sign that a command
// reached the engine while the store could not take it.
type failedApplies struct {
	slog.Handler
	commands chan string
}

func (h failedApplies) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "apply failed, will retry" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "command" {
				select {
				case h.commands <- a.Value.String():
				default:
				}
			}
			return true
		})
	}
	return nil
}

func (h failedApplies) Enabled(context.Context, slog.Level) bool { return true }

func (h failedApplies) WithAttrs([]slog.Attr) slog.Handler { return h }

// TestSQLiteLocked: another process holds the database's write lock past the
// busy timeout. Apply says ErrStoreBusy and writes nothing; a command sent
// through the stream meanwhile waits there and is applied once the lock goes.
func TestSQLiteLocked(t *testing.T) {
	store, path := openSQLiteAt(t, t.TempDir())
	_, nc, js := enginetest.StartNATS(t)
	failed := failedApplies{Handler: slog.DiscardHandler, commands: make(chan string, 16)}
	e, err := engine.New(engine.Config{Logger: slog.New(failed)}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	other, err := sql.Open("sqlite3", "file:"+path+"?_txlock=exclusive")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec("CREATE TABLE IF NOT EXISTS other_writer (x INTEGER)"); err != nil {
		t.Fatal(err)
	}

	if _, err := e.Apply(ctx, create("locked1", 100)); !errors.Is(err, engine.ErrStoreBusy) {
		t.Fatalf("Apply while locked: err = %v, want ErrStoreBusy", err)
	}
	enginetest.RunEngine(t, e)
	if _, err := engine.Publish(ctx, js, create("locked2", 100), nil); err != nil {
		t.Fatal(err)
	}
	// The engine tries, fails, and the command waits in the stream.
	waitFailed(t, failed.commands, create("locked2", 100).ID)
	if _, err := store.Order(ctx, "locked2"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("order written while the store was locked: %v", err)
	}

	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		_, err := store.Order(ctx, "locked2")
		return err
	})
	if res, err := e.Apply(ctx, create("locked1", 100)); err != nil || !res.Applied {
		t.Fatalf("Apply after the lock went: %+v %v", res, err)
	}
	checkIntegrity(t, path)
}

// waitFailed waits until the intake reports it failed to apply command id.
func waitFailed(t *testing.T, failed <-chan string, id string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-failed:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("the engine never tried command %s", id)
		}
	}
}

// TestDiskFull: the disk holding the database fills up (a 4 MiB tmpfs, so
// the test needs root and mount; it skips otherwise). Apply says ErrStoreFull
// and writes nothing, the file stays sound, a command sent meanwhile waits
// in the stream, and all goes on once space is freed.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("SKIPPING the disk-full test: cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	store, path := openSQLiteAt(t, dir)
	e, _, js := newEngine(t, store)
	ctx := context.Background()
	paid(t, e, "before", 100)

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			break // ENOSPC
		}
	}
	for { // the last few bytes
		if _, err := f.Write(block[:512]); err != nil {
			break
		}
	}
	f.Close()

	var full error
	for i := range 200 { // until a write needs a page the disk no longer has
		id := engine.OrderID("full" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		if _, full = e.Apply(ctx, create(id, 100)); full != nil {
			if _, err := store.Order(ctx, id); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("order %s half-written on a full disk: %v", id, err)
			}
			break
		}
	}
	if !errors.Is(full, engine.ErrStoreFull) {
		t.Fatalf("Apply on a full disk: err = %v, want ErrStoreFull", full)
	}
	t.Logf("on a full disk: %v", full)
	enginetest.RunEngine(t, e)
	if _, err := engine.Publish(ctx, js, create("waits", 100), nil); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		_, err := store.Order(ctx, "waits")
		return err
	})
	o, err := store.Order(ctx, "before")
	if err != nil || o.State != engine.Notified || o.PaidFen != 100 {
		t.Fatalf("the order paid before the disk filled: %+v %v", o, err)
	}
	checkIntegrity(t, path)
}
