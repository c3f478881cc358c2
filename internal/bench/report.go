package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/wxflow/wxflow/engine"
)

// Print writes the report for people.
func Print(w io.Writer, r *Report) {
	fmt.Fprintf(w, "%d orders (%d refunded), concurrency %d, pay API %s, %d preloaded: %.1f orders/s (%.2f s)\n",
		r.Orders, r.Refunded, r.Concurrency, r.PayAPI, r.Preloaded, r.OrdersPerS, r.Seconds)
	keys := make([]string, 0, len(r.Latency))
	for k := range r.Latency {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "latency (ms)            p50     p90     p99     max")
	for _, k := range keys {
		p := r.Latency[k]
		fmt.Fprintf(w, "  %-20s %7.1f %7.1f %7.1f %7.1f\n", strings.Replace(k, "_", "→", 1), p.P50, p.P90, p.P99, p.Max)
	}
	fmt.Fprintf(w, "WeChat calls per order %.2f, peak RSS %.0f MiB, DB %.1f MiB, event stream %.1f MiB\n",
		r.WeChatCallsPerOrder, r.PeakRSSMiB, float64(r.DBBytes)/(1<<20), float64(r.StreamBytes)/(1<<20))
	if n := len(r.HeapMiB); n > 0 {
		fmt.Fprintf(w, "memory every 10 s: RSS %.0f → %.0f MiB, Go heap live %.0f → %.0f MiB (%d samples)\n",
			r.RSSMiB[0], r.RSSMiB[n-1], r.HeapMiB[0], r.HeapMiB[n-1], n)
	}
	fmt.Fprintf(w, "ceiling: %d SQL transactions in %.2f s + %d JetStream round trips in %.2f s = %.1f orders/s\n",
		r.Ceiling.Transactions, r.Ceiling.SQLSeconds, r.Ceiling.RoundTrips, r.Ceiling.NATSSeconds, r.Ceiling.OrdersPerS)
	fmt.Fprintf(w, "ratio = engine orders/s ÷ ceiling orders/s = %.2f\n", r.Ratio)
}

// databaseBytes is the database's size on disk: the SQLite file with its
// write-ahead log, or PostgreSQL's pg_database_size; 0 when unknown.
func databaseBytes(ctx context.Context, store *engine.Store, dbURL string) int64 {
	if store.Dialect() == engine.Postgres { // engine.Open chose PostgreSQL for this URL
		n, _ := store.DatabaseSize(ctx)
		return n
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(dbURL, "sqlite:"), "?")
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}
