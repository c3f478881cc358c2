package engine_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/wxflow/wxflow/engine"
)

// TestSQLiteFilesArePrivate: the database, its write-ahead log and the log's
// index are readable by their owner alone, whatever the umask would give.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask: SQLite alone would make the files 0644
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "wxflow.db")
	s, err := engine.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, _, _ := newEngine(t, s)
	paid(t, e, "o1", 100) // writes: the log exists
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if got := fi.Mode().Perm(); got != fs.FileMode(0o600) {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), got)
		}
	}
}
