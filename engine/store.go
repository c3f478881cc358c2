package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // SQLite driver "sqlite3"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/wxflow/wxflow/schema"
)

// Store is wxflow's SQL state: orders, their history, commands seen,
// refunds and the outbox. The same queries run on SQLite and PostgreSQL
// (sqlx rebinds the placeholders). It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect Dialect
	// path is the SQLite file (DatabaseSize); "" on PostgreSQL.
	path string
	// writeTurn (SQLite only) lets this process's writers take turns before
	// they reach SQLite: SQLite lets one writer in at a time and has the
	// others poll with growing sleeps (1, 2, 5, 10… ms) in its busy handler,
	// which made every contended commit wait milliseconds for nothing.
	writeTurn chan struct{}
}

// Open connects to dsn and applies the migrations. "postgres://…" or
// "postgresql://…" selects PostgreSQL; "sqlite:PATH" or a plain path selects
// SQLite (WAL, a busy timeout, immediate write transactions, foreign keys).
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = Postgres
		s.db, err = sqlx.Open(s.dialect.driver(), dsn)
		if err == nil {
			s.db.SetMaxOpenConns(16)
		}
	} else {
		path := strings.TrimPrefix(dsn, "sqlite:")
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("engine: %w", err)
			}
		}
		s.dialect, s.path = SQLite, strings.SplitN(path, "?", 2)[0]
		if err := createPrivate(s.path); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		s.writeTurn = make(chan struct{}, 1)
		s.db, err = sqlx.Open(s.dialect.driver(), sqliteDSN(path))
		if err == nil {
			s.db.SetMaxOpenConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("engine: open store: %w", err)
	}
	// Keep every connection open: database/sql keeps only two idle by default,
	// so a burst closed the others and the next one paid for a new connection
	// (a PostgreSQL backend, or an SQLite handle with its pragmas) and lost
	// its cache of prepared statements.
	s.db.SetMaxIdleConns(s.db.Stats().MaxOpenConnections)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("engine: open store: %w", err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate creates the SQLite file, empty and readable by its owner
// alone (0600), when it does not exist yet: it holds every order, openid and
// refund, and SQLite would create it with the umask's mode (0644, readable
// by every local user). SQLite gives the write-ahead log and its index
// (-wal, -shm) the main file's mode, so they are private too. An existing
// file keeps the mode its owner gave it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return err
	}
	return f.Close()
}

// beginWrite starts a write transaction, after this process's other writers
// on SQLite; done must be called once the transaction has ended.
func (s *Store) beginWrite(ctx context.Context) (tx *sqlx.Tx, done func(), err error) {
	done, err = s.writerTurn(ctx)
	if err != nil {
		return nil, nil, err
	}
	if tx, err = s.db.BeginTxx(s.stmtContext(ctx), nil); err != nil {
		done()
		return nil, nil, err
	}
	return tx, done, nil
}

// stmtContext is the context the statements of the engine's own write path
// (a command's transaction, the relay's outbox) run with. On SQLite it
// cannot be cancelled: go-sqlite3 runs each statement whose context can be
// cancelled on a goroutine of its own, to interrupt it, and database/sql
// watches each such transaction with another; for statements of
// microseconds that was a tenth of the engine's CPU (goroutines, their
// stacks grown for cgo, scheduling). Such a transaction ends, committed or
// rolled back, within microseconds of a cancel anyway. PostgreSQL keeps
// ctx: pgx cancels a query on the server.
func (s *Store) stmtContext(ctx context.Context) context.Context {
	if s.dialect == SQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// execWrite runs one writing statement, after this process's other writers
// on SQLite.
func (s *Store) execWrite(ctx context.Context, query string, args ...any) error {
	done, err := s.writerTurn(ctx)
	if err != nil {
		return err
	}
	defer done()
	_, err = s.db.ExecContext(s.stmtContext(ctx), query, args...)
	return err
}

func (s *Store) writerTurn(ctx context.Context) (done func(), err error) {
	if s.writeTurn == nil {
		return func() {}, nil
	}
	select {
	case s.writeTurn <- struct{}{}:
		return func() { <-s.writeTurn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sqliteDSN is the driver's DSN for "PATH[?options]": WAL, a 10 s busy
// timeout, immediate write transactions, foreign keys, and a cache of
// prepared statements per connection (preparing took a fifth of the
// intake's time: wxflow runs the same few dozen queries over and over).
// Options given in the URL (e.g. "?_busy_timeout=200") win over these.
func sqliteDSN(pathAndQuery string) string {
	path, query, _ := strings.Cut(pathAndQuery, "?")
	q, _ := url.ParseQuery(query)
	for k, v := range map[string]string{"_journal_mode": "WAL", "_busy_timeout": "10000", "_foreign_keys": "on",
		"_txlock": "immediate", "_synchronous": "NORMAL", "_stmt_cache_size": "64"} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	return "file:" + path + "?" + q.Encode()
}

// Migrate applies the embedded migrations that are not applied yet.
func (s *Store) Migrate(ctx context.Context) error {
	dialect, fsys := goose.DialectSQLite3, schema.SQLite()
	var opts []goose.ProviderOption
	if s.dialect == Postgres {
		dialect, fsys = goose.DialectPostgres, schema.Postgres()
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("engine: migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("engine: migrations: %w", err)
	}
	// Processes started together race to migrate SQLite (PostgreSQL has the
	// session lock): the loser's transaction rolls back, and it tries again.
	for attempt := 0; ; attempt++ {
		_, err = p.Up(ctx)
		if err == nil || attempt == 10 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("engine: migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Dialect is the kind of database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// OpenRaw connects to a PostgreSQL DSN without migrating: for tools and tests
// that manage schemas.
func OpenRaw(ctx context.Context, dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open(Postgres.driver(), dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
