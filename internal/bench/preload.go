package bench

import (
	"context"

	"github.com/wxflow/wxflow/engine"
)

// preload fills the store with n paid orders and one event each, in
// batches of 10,000 rows per transaction.
func preload(ctx context.Context, dsn string, n int) error {
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	return store.PreloadPaidOrders(ctx, n)
}
