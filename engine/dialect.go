package engine

// Dialect is the kind of SQL database a store runs on. engine.Open chooses it
// once, from the URL; the few statements that differ between the two (row
// locks, migrations, the database's size) ask it.
type Dialect string

// The databases wxflow runs on; each value is its database/sql driver's name.
const (
	SQLite   Dialect = "sqlite3" // one file, one writer at a time (WAL)
	Postgres Dialect = "pgx"     // many writers, row locks
)

// driver is the database/sql driver's name.
func (d Dialect) driver() string { return string(d) }
