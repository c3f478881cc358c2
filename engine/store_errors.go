package engine

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// SQLSTATE codes of PostgreSQL the store tells apart.
const (
	pgSerializationFailure = "40001" // serialization_failure
	pgDeadlock             = "40P01" // deadlock_detected
	pgUniqueViolation      = "23505" // unique_violation
	pgDiskFull             = "53100" // disk_full
	pgInsufficientRes      = "53000" // insufficient_resources
)

// racedKeys are the unique keys two concurrent applies may both write: a
// violation of one means another transaction wrote it first. (A command id
// is not among them: recordCommand writes it ON CONFLICT DO NOTHING.)
var racedKeys = map[string]bool{"orders_pkey": true,
	"orders_merchant_out_trade_no_key": true, "refunds_pkey": true}

// storeError tells a busy or full database apart, wrapping the driver's error.
func storeError(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return fmt.Errorf("%w: %w", ErrStoreBusy, err)
		case sqlite3.ErrFull:
			return fmt.Errorf("%w: %w", ErrStoreFull, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == pgDiskFull || pe.Code == pgInsufficientRes) {
		return fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	return err
}

// isBusy reports a write conflict worth retrying the transaction for: SQLite
// busy or locked; on PostgreSQL a serialization failure, a deadlock, or two
// transactions (two engines, see turns.go) writing the same key at once:
// the same order, out_trade_no or out_refund_no (the loser, tried again,
// finds the row there and decides on it);
// and an order changed under the write.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errVersionConflict) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgSerializationFailure, pgDeadlock:
			return true
		case pgUniqueViolation:
			return racedKeys[pe.ConstraintName]
		}
	}
	return false
}
