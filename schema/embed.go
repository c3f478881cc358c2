// Package schema holds wxflow's SQL migrations, embedded in the binary: one
// folder per dialect, with the same numbers, applied by goose at start and by
// `wxflow migrate`.
package schema

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite returns the SQLite migrations.
func SQLite() fs.FS { sub, _ := fs.Sub(files, "sqlite"); return sub }

// Postgres returns the PostgreSQL migrations.
func Postgres() fs.FS { sub, _ := fs.Sub(files, "postgres"); return sub }
